//! `QMatrix`: a weight matrix kept in its block-quantized form (candle's `QMatMul`, ggml's
//! quantized `src0`), multiplied on its blocks by [`QMatrix::matmul`].
//!
//! The rows are the output features and lie one after another, each `cols / block_size` blocks
//! of the GGUF layout (ggml's `block_q8_0`: f16 `d`, 32 × i8; `block_q4_0`: f16 `d`, 16 bytes of
//! nibbles; `block_q4_1`, `block_q5_0`, `block_q5_1`: the same with a minimum and/or fifth bits;
//! `block_q4_K`, `block_q5_K`, `block_q6_K`: 256 weights each, see their modules). The k-quants'
//! bytes are owned or shared with a memory map as they are; the 32-weight formats (Q8_0, Q4_0,
//! Q4_1, Q5_0, Q5_1, MXFP4, FP8_E4M3) are copied once into groups of 8 interleaved rows
//! (`quant::interleave`), the layout their kernels read, and the file's bytes are no longer
//! needed.

use std::sync::Arc;

use half::bf16;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::qmatmul::{self, QKernel};
use super::{GgmlType, dequantize, interleave};
use crate::cpu::{isa, pool};
use crate::{DType, Error, Result, Tensor};

/// From this many activation rows on, a product widens panels of weight rows to f32 and runs the
/// f32 GEMM (whose cache blocking beats integer dots per row pair once the weights are reused
/// enough); below it, integer dots on the blocks.
pub const GEMM_MIN_ROWS: usize = 32;
/// The row count from which `matmul` takes the GEMM path (`GEMM_MIN_ROWS` unless set).
static GEMM_ROWS: AtomicUsize = AtomicUsize::new(GEMM_MIN_ROWS);

/// Moves the switch between integer dots and the f32 GEMM to `rows` activation rows (`None`:
/// back to [`GEMM_MIN_ROWS`]; `Some(usize::MAX)`: integer dots always). Process-wide, for tests
/// and measurements, as `isa::force`.
pub fn set_gemm_min_rows(rows: Option<usize>) {
    GEMM_ROWS.store(rows.unwrap_or(GEMM_MIN_ROWS), Ordering::Relaxed);
}

/// Weight rows widened at a time on the GEMM path: bounds the scratch memory (4 MiB of f32 at
/// 1024 columns) while keeping each GEMM large enough that the activations, packed per GEMM, are
/// packed few times.
/// A multiple of 8, so that panels of interleaved Q4_0 / Q8_0 rows are whole groups.
const PANEL_ROWS: usize = 1024;

/// Where the bytes live.
type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A [rows, cols] weight matrix (rows = outputs, cols = inputs) in a block format.
#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: Bytes,
    start: usize,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} [{}, {}])", self.ty, self.rows, self.cols)
    }
}

impl QMatrix {
    /// Whether products on the blocks of `ty` are implemented (integer dots for few rows, decoded
    /// panels for the GEMM): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, MXFP4 and FP8_E4M3
    /// (whose dots are floating point, see `qmatmul::fp8`).
    pub fn supports(ty: GgmlType) -> bool {
        matches!(
            ty,
            GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q4_K
                | GgmlType::Q5_K
                | GgmlType::Q6_K
                | GgmlType::MXFP4
                | GgmlType::FP8_E4M3
        )
    }

    /// A matrix owning `bytes`.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> Result<QMatrix> {
        QMatrix::shared(ty, rows, cols, Arc::new(bytes), 0)
    }

    /// A matrix over `bytes[start..]` of a buffer shared with others (a memory-mapped file), in
    /// GGUF's layout. The k-quants keep borrowing it; Q4_0 and Q8_0 are copied into their
    /// interleaved layout, after which the caller may release the borrowed range.
    pub fn shared(ty: GgmlType, rows: usize, cols: usize, bytes: Bytes, start: usize) -> Result<QMatrix> {
        if !QMatrix::supports(ty) {
            return Err(Error::unsupported("QMatrix", format!("products on {ty} blocks are not implemented")));
        }
        if cols == 0 || !cols.is_multiple_of(ty.block_size()) {
            return Err(Error::shape(
                "QMatrix",
                format!("{cols} columns are not a whole number of {ty} blocks of {}", ty.block_size()),
            ));
        }
        let need = rows.checked_mul(cols / ty.block_size()).and_then(|b| b.checked_mul(ty.type_size()));
        let have = (*bytes).as_ref().len().saturating_sub(start);
        if need.is_none_or(|n| n > have) {
            return Err(Error::shape(
                "QMatrix",
                format!("[{rows}, {cols}] {ty} needs more than the {have} bytes given"),
            ));
        }
        if interleave::applies(ty) {
            let src = &(*bytes).as_ref()[start..];
            let bytes: Bytes = Arc::new(interleave::interleave(ty, rows, cols, src));
            return Ok(QMatrix { ty, rows, cols, bytes, start: 0 });
        }
        Ok(QMatrix { ty, rows, cols, bytes, start })
    }

    /// Quantizes row-major f32 `values` ([rows, cols]) with ggml's reference quantizer.
    pub fn quantize(ty: GgmlType, rows: usize, cols: usize, values: &[f32]) -> Result<QMatrix> {
        if values.len() != rows * cols {
            return Err(Error::shape("QMatrix::quantize", format!("{} values for [{rows}, {cols}]", values.len())));
        }
        QMatrix::new(ty, rows, cols, super::quantize(ty, values)?)
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_size() * self.ty.type_size()
    }

    /// The packed bytes as stored: row after row, or for Q4_0 and Q8_0 interleaved by groups of
    /// 8 rows (`quant::interleave`; see [`QMatrix::gguf_row`]).
    pub fn data(&self) -> &[u8] {
        let len = if interleave::applies(self.ty) {
            interleave::len(self.ty, self.rows, self.cols)
        } else {
            self.rows * self.row_bytes()
        };
        &(*self.bytes).as_ref()[self.start..self.start + len]
    }

    /// Row `j`'s bytes in the GGUF layout (`out`: [`QMatrix::row_bytes`] long).
    fn gguf_row<'a>(&'a self, j: usize, out: &'a mut [u8]) -> &'a [u8] {
        if interleave::applies(self.ty) {
            interleave::gguf_row(self.ty, self.cols, self.data(), j, out);
            out
        } else {
            let rb = self.row_bytes();
            &self.data()[j * rb..(j + 1) * rb]
        }
    }

    /// Row `j` decoded to f32 (bit-identical to ggml's `dequantize_row_*`).
    pub fn dequantize_row(&self, j: usize, out: &mut [f32]) -> Result<()> {
        if j >= self.rows || out.len() != self.cols {
            return Err(Error::index(
                "QMatrix::dequantize_row",
                format!("row {j} of {} into {} values (want {})", self.rows, out.len(), self.cols),
            ));
        }
        let mut row = vec![0u8; self.row_bytes()];
        dequantize(self.ty, self.gguf_row(j, &mut row), out)
    }

    /// The whole matrix decoded to f32, row-major.
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        self.dequantize_rows(0, &mut out)?;
        Ok(out)
    }

    /// Rows from `j0` (a multiple of 8) decoded into `out` (whole rows), in parallel.
    fn dequantize_rows(&self, j0: usize, out: &mut [f32]) -> Result<()> {
        if interleave::applies(self.ty) {
            self.decode_groups(j0, out, |g, o| interleave::dequantize_group(self.ty, self.cols, g, o, |v| v));
            return Ok(());
        }
        let rb = self.row_bytes();
        let src = &self.data()[j0 * rb..];
        out.par_chunks_mut(self.cols).zip(src.par_chunks(rb)).try_for_each(|(o, w)| dequantize(self.ty, w, o))
    }

    /// Rows `j0..j0 + p` (`j0` a multiple of 8) decoded to bf16, in parallel, in a vector from the
    /// pool (a fresh allocation per panel faulted its pages in on every product): interleaved
    /// Q4_0 / Q8_0 groups straight to bf16; rows as stored (the k-quants) each to f32 in a
    /// per-task row and rounded to bf16 from there, the values an f32 panel converted after would
    /// hold, without writing and reading back that panel.
    fn dequantize_rows_bf16(&self, j0: usize, p: usize) -> Result<Vec<bf16>> {
        if interleave::applies(self.ty) {
            let mut out = pool::zeroed::<bf16>(p * self.cols);
            self.decode_groups(j0, &mut out, |g, o| interleave::dequantize_group_bf16(self.ty, self.cols, g, o));
            return Ok(out);
        }
        let mut out = pool::overwritten::<bf16>(p * self.cols);
        let rb = self.row_bytes();
        let src = &self.data()[j0 * rb..(j0 + p) * rb];
        out.par_chunks_mut(self.cols).zip(src.par_chunks(rb)).try_for_each_init(
            || vec![0.0f32; self.cols],
            |row, (o, w)| {
                dequantize(self.ty, w, row)?;
                o.iter_mut().zip(row.iter()).for_each(|(d, &v)| *d = bf16::from_f32(v));
                Ok::<(), Error>(())
            },
        )?;
        Ok(out)
    }

    /// The rows `ids` decoded to f32, [ids.len(), cols] (an embedding lookup: only the rows read
    /// are widened).
    pub fn gather_rows(&self, ids: &[usize]) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; ids.len() * self.cols];
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(self.cols)) {
            self.dequantize_row(id, o)?;
        }
        Ok(out)
    }

    /// `x [.., cols] f32 -> [.., rows] f32` on the CPU: `x W^T`, as `Linear` computes it.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            return Err(Error::unsupported(
                "QMatrix::matmul",
                format!("{self:?} multiplies f32 activations on the CPU, got {} on {:?}", x.dtype(), x.device()),
            ));
        }
        let dims = x.dims();
        if dims.last() != Some(&self.cols) {
            return Err(Error::shape("QMatrix::matmul", format!("activations {dims:?} against {self:?}")));
        }
        let m = x.elem_count() / self.cols;
        let mut out = dims.to_vec();
        *out.last_mut().expect("rank >= 1") = self.rows;
        if m >= GEMM_ROWS.load(Ordering::Relaxed) {
            return self.panels(&x.reshape([m, self.cols])?)?.reshape(out);
        }
        let kernel = QKernel::for_isa(isa::active());
        let y = crate::cpu::with_values("QMatrix::matmul", x, |xs: &[f32]| self.matmul_blocks(xs, m, kernel))?;
        Tensor::from_vec(y, out, x.device())
    }

    /// `x` ([m, cols], row-major) times the matrix transposed: [m, rows], with `kernel` (an
    /// unavailable one falls back to the active path's).
    pub fn matmul_f32(&self, x: &[f32], m: usize, kernel: QKernel) -> Result<Vec<f32>> {
        if x.len() != m * self.cols {
            return Err(Error::shape("QMatrix::matmul", format!("{} values are not [{m}, {}]", x.len(), self.cols)));
        }
        if m >= GEMM_ROWS.load(Ordering::Relaxed) {
            return self.matmul_panels(x, m);
        }
        Ok(self.matmul_blocks(x, m, kernel))
    }

    /// Integer dots on the blocks, whatever `m`.
    pub fn matmul_blocks(&self, x: &[f32], m: usize, kernel: QKernel) -> Vec<f32> {
        let mut out_t = vec![0.0f32; self.rows * m];
        qmatmul::matmul_t(kernel, self.ty, self.data(), x, self.cols, m, &mut out_t);
        if m == 1 {
            return out_t;
        }
        let mut out = vec![0.0f32; m * self.rows];
        for (j, col) in out_t.chunks_exact(m).enumerate() {
            for (i, &v) in col.iter().enumerate() {
                out[i * self.rows + j] = v;
            }
        }
        out
    }

    /// Interleaved rows from `j0` (a multiple of 8) decoded into `out`, in parallel: `decode`
    /// takes a group's bytes and its rows of `out`.
    fn decode_groups<T: Send>(&self, j0: usize, out: &mut [T], decode: impl Fn(&[u8], &mut [T]) + Sync) {
        debug_assert!(interleave::applies(self.ty) && j0.is_multiple_of(interleave::GROUP));
        let group_bytes = self.cols / self.ty.block_size() * interleave::tile_bytes(self.ty);
        let groups = self.data()[j0 / interleave::GROUP * group_bytes..].par_chunks(group_bytes);
        out.par_chunks_mut(interleave::GROUP * self.cols).zip(groups).for_each(|(o, g)| decode(g, o));
    }

    /// Panels of weight rows widened to f32 (bf16 where the bf16 GEMM runs), each multiplied by the
    /// GEMM (x unquantized).
    pub fn matmul_panels(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let xt = Tensor::from_vec(x.to_vec(), [m, self.cols], &crate::Device::cpu())?;
        self.panels(&xt)?.to_vec::<f32>()
    }

    /// [`QMatrix::matmul_panels`] on a [m, cols] tensor: [m, rows], the panels' products side by
    /// side.
    fn panels(&self, x: &Tensor) -> Result<Tensor> {
        let cpu = crate::Device::cpu();
        let mut parts = Vec::new();
        for j0 in (0..self.rows).step_by(PANEL_ROWS) {
            let p = PANEL_ROWS.min(self.rows - j0);
            // Where the CPU has `vdpbf16ps`, bf16 panels run the bf16 GEMM at twice the f32
            // GEMM's rate (see cpu::gemm_bf16); the rounding (2^-9 relative per weight, the
            // activations likewise) is below the blocks' own quantization error. The weights
            // decode straight to bf16 ([`QMatrix::dequantize_rows_bf16`]).
            let w = if isa::bf16_gemm() {
                Tensor::from_vec(self.dequantize_rows_bf16(j0, p)?, [p, self.cols], &cpu)?
            } else {
                let mut panel = pool::zeroed::<f32>(p * self.cols);
                self.dequantize_rows(j0, &mut panel)?;
                Tensor::from_vec(panel, [p, self.cols], &cpu)?
            };
            parts.push(x.matmul(&w.t()?)?);
        }
        match parts.as_slice() {
            [one] => Ok(one.clone()),
            _ => Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1),
        }
    }
}
