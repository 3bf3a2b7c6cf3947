//! `DeviceQMatrix`: a block-quantized weight matrix kept on an accelerator, in the word layout
//! its kernels read, and multiplied there on its blocks ([`crate::Backend::qmatmul`]): a GGUF
//! model on a GPU takes the file's bits per weight in device memory and reads them per token,
//! instead of an f32 copy four to eight times larger.
//!
//! The layout is ggml's blocks, rearranged only so that every load is an aligned 32-bit word
//! (storage buffers hold `array<u32>`; ggml's 34-byte Q8_0 and 18-byte Q4_0 blocks are not
//! word-aligned). Block `b` counts over the whole matrix, row after row:
//! - Q8_0: the 32 `i8` quants of block `b` as words `8b..8b+8`, then, after all the quants, the
//!   f16 scales two to a word (block `b`'s in word `S + b/2`, half `b % 2`, `S = 8 * blocks`);
//! - Q4_0: the 16 nibble bytes of block `b` as words `4b..4b+4`, then the scales as for Q8_0
//!   (`S = 4 * blocks`);
//! - Q4_1: ggml's 20-byte blocks as they are (f16 `d` and `m`, 16 nibble bytes), 5 words each;
//! - Q5_0: ggml's 22-byte blocks (f16 `d`, u32 `qh` of fifth bits, 16 nibble bytes) are not
//!   word-aligned either: block `b`'s `qh` and nibble bytes as words `5b..5b+5`, then the scales
//!   as for Q8_0 (`S = 5 * blocks`), so no byte is padding;
//! - Q5_1: ggml's 24-byte blocks as they are (f16 `d` and `m`, `qh`, 16 nibble bytes), 6 words
//!   each;
//! - Q4_K: ggml's 144-byte blocks as they are (`d`, `dmin`, 12 scale bytes, 128 nibble bytes:
//!   already whole words), 36 words each;
//! - Q5_K: ggml's 176-byte blocks as they are (Q4_K's fields and 32 bytes of high bits before
//!   the nibbles), 44 words each;
//! - Q6_K: ggml's 210-byte blocks each padded with 2 zero bytes to 212, 53 words each;
//! - FP8_E4M3: the 36-byte blocks as they are (the f32 scale, then 32 E4M3 codes), 9 words each;
//! - MXFP4: the 16 code bytes of block `b` as words `4b..4b+4`, then the E8M0 scale bytes four
//!   to a word (block `b`'s in word `S + b/4`, byte `b % 4`, `S = 4 * blocks`).
//!
//! Values are the file's: the kernels decode them with ggml's formulas, so a product differs from
//! the CPU's f32 product of the dequantized matrix only in the order of the f32 sums.

use super::GgmlType;
use crate::{DType, Device, Error, Result, Tensor};

/// A [rows, cols] matrix (rows = outputs) of `ty` blocks on a device, or a stack of `experts`
/// such matrices (a MoE projection, [experts, rows, cols], laid out as one [experts rows, cols]
/// matrix).
#[derive(Clone, Debug)]
pub struct DeviceQMatrix {
    ty: GgmlType,
    experts: usize,
    rows: usize,
    cols: usize,
    /// The words of the layout above, u32.
    words: Tensor,
}

/// The words of `bytes` (a [rows, cols] matrix of `ty` blocks in GGUF's layout) in the device
/// layout of this module's header.
pub fn device_words(ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Vec<u32>> {
    const OP: &str = "DeviceQMatrix";
    if !DeviceQMatrix::supports(ty) {
        return Err(Error::unsupported(OP, format!("no device kernels for {ty} blocks")));
    }
    if cols == 0 || !cols.is_multiple_of(ty.block_size()) {
        return Err(Error::shape(OP, format!("{cols} columns are not whole {ty} blocks of {}", ty.block_size())));
    }
    let blocks = rows * cols / ty.block_size();
    let size = ty.type_size();
    if bytes.len() != blocks * size {
        return Err(Error::shape(
            OP,
            format!("{} bytes do not hold [{rows}, {cols}] in {ty} ({} bytes)", bytes.len(), blocks * size),
        ));
    }
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut out = Vec::with_capacity(blocks * size.div_ceil(4) + blocks.div_ceil(2));
    match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => {
            for block in bytes.chunks_exact(size) {
                out.extend(block[2..].chunks_exact(4).map(word));
            }
            for pair in bytes.chunks(2 * size) {
                let low = u16::from_le_bytes([pair[0], pair[1]]) as u32;
                let high = if pair.len() > size { u16::from_le_bytes([pair[size], pair[size + 1]]) as u32 } else { 0 };
                out.push(low | high << 16);
            }
        }
        GgmlType::MXFP4 => {
            for block in bytes.chunks_exact(size) {
                out.extend(block[1..].chunks_exact(4).map(word));
            }
            for four in bytes.chunks(4 * size) {
                let e = |i: usize| four.get(i * size).map_or(0, |&b| b as u32);
                out.push(e(0) | e(1) << 8 | e(2) << 16 | e(3) << 24);
            }
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::FP8_E4M3 => {
            out.extend(bytes.chunks_exact(4).map(word))
        }
        GgmlType::Q6_K => {
            for block in bytes.chunks_exact(size) {
                let mut padded = [0u8; 212];
                padded[..size].copy_from_slice(block);
                out.extend(padded.chunks_exact(4).map(word));
            }
        }
        _ => unreachable!("DeviceQMatrix::supports was checked"),
    }
    Ok(out)
}

impl DeviceQMatrix {
    /// Whether `ty` has a device layout and kernels: the block types the CPU's `QMatrix`
    /// multiplies too.
    pub fn supports(ty: GgmlType) -> bool {
        super::QMatrix::supports(ty)
    }

    /// Uploads `bytes`, a [rows, cols] matrix of `ty` blocks in GGUF's layout, to `device`.
    pub fn upload(ty: GgmlType, rows: usize, cols: usize, bytes: &[u8], device: &Device) -> Result<DeviceQMatrix> {
        DeviceQMatrix::upload_stack(ty, 1, rows, cols, bytes, device)
    }

    /// Uploads `bytes`, `experts` [rows, cols] matrices of `ty` blocks one after another (GGUF's
    /// [E, rows, cols] expert tensors), to `device`.
    pub fn upload_stack(
        ty: GgmlType,
        experts: usize,
        rows: usize,
        cols: usize,
        bytes: &[u8],
        device: &Device,
    ) -> Result<DeviceQMatrix> {
        let words = device_words(ty, experts * rows, cols, bytes)?;
        let n = words.len();
        Ok(DeviceQMatrix { ty, experts, rows, cols, words: Tensor::from_vec(words, [n], device)? })
    }

    /// How many matrices are stacked (1 unless a MoE projection).
    pub fn experts(&self) -> usize {
        self.experts
    }

    /// Row `r` of `x [R, cols]` f32 through expert `ids[r]`'s matrix: [R, rows] f32. Only the
    /// chosen experts' blocks are read.
    pub fn expert_matmul(&self, x: &Tensor, ids: &Tensor) -> Result<Tensor> {
        const OP: &str = "DeviceQMatrix::expert_matmul";
        x.check_same_device(OP, &self.words)?;
        ids.check_same_device(OP, &self.words)?;
        let r = ids.elem_count();
        if x.dtype() != DType::F32 || x.dims() != [r, self.cols] || !ids.dtype().is_int() {
            return Err(Error::shape(
                OP,
                format!(
                    "x {:?} {} and ids {:?} {} against {} experts of {} [{}, {}]",
                    x.dims(),
                    x.dtype(),
                    ids.dims(),
                    ids.dtype(),
                    self.experts,
                    self.ty,
                    self.rows,
                    self.cols
                ),
            ));
        }
        let shape = [self.experts, self.rows, self.cols];
        let buffer = x.device().backend().qexpert_matmul(x.src(), self.words.src(), self.ty, shape, ids.src())?;
        Ok(x.new_like(buffer, [r, self.rows], DType::F32))
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

    /// Bytes held on the device.
    pub fn device_bytes(&self) -> usize {
        self.words.elem_count() * 4
    }

    /// The rows `ids` (u32 or i64, any shape, on the matrix's device) pick, decoded: ids.shape +
    /// [cols] f32. An embedding table kept as blocks; an id past the rows is an error (reported
    /// at the next readback, as `index_select`'s).
    pub fn gather(&self, ids: &Tensor) -> Result<Tensor> {
        const OP: &str = "DeviceQMatrix::gather";
        self.single(OP)?;
        ids.check_same_device(OP, &self.words)?;
        if !ids.dtype().is_int() {
            return Err(Error::dtype(OP, format!("ids must be integers, got {}", ids.dtype())));
        }
        let backend = ids.device().backend();
        let buffer = backend.qindex_select(self.words.src(), self.ty, self.rows, self.cols, ids.src())?;
        let mut dims = ids.dims().to_vec();
        dims.push(self.cols);
        Ok(ids.new_like(buffer, dims, DType::F32))
    }

    /// `x [.., cols] f32 -> [.., rows] f32` on the matrix's device: `x W^T`, as `Linear`
    /// computes it.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        const OP: &str = "DeviceQMatrix::matmul";
        self.single(OP)?;
        x.check_same_device(OP, &self.words)?;
        let dims = x.dims();
        if x.dtype() != DType::F32 || dims.last() != Some(&self.cols) {
            return Err(Error::shape(
                OP,
                format!("activations {dims:?} {} against {} [{}, {}]", x.dtype(), self.ty, self.rows, self.cols),
            ));
        }
        let m = x.elem_count() / self.cols;
        let x = x.contiguous()?;
        let buffer = x.device().backend().qmatmul(x.src(), self.words.src(), self.ty, self.rows, self.cols)?;
        let mut out = dims.to_vec();
        *out.last_mut().expect("rank >= 1") = self.rows;
        x.new_like(buffer, [m, self.rows], DType::F32).reshape(out)
    }

    fn single(&self, op: &str) -> Result<()> {
        if self.experts != 1 {
            return Err(Error::shape(
                op,
                format!("a stack of {} experts is multiplied by expert_matmul", self.experts),
            ));
        }
        Ok(())
    }
}
