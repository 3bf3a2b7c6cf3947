//! Weights packed at load for the kernels that multiply by them.
//!
//! `--quantize q8_0|q4_0`: a model loaded from safetensors with its matrices quantized at load
//! and kept as blocks, as a GGUF file of that type would load: every matrix a loader may pack
//! (each `Linear`, the embedding table, the routed experts; see `nn::PackedSlot`) whose rows are
//! whole blocks is encoded with ggml's quantizer and put in its slot (on the CPU a `QMatrix`, on
//! a GPU a `DeviceQMatrix`), and its `Var` becomes a storage-free placeholder, so the f32 or
//! bf16 copy is freed. Routers, norms and biases stay as loaded, as llama.cpp's quantizer leaves
//! them.

use std::collections::HashMap;
use std::sync::Arc;

use nn::{Module, ModuleExt, PackedSlot};
use tensor::cpu::bf16_panels::Bf16Panels;
use tensor::quant::{self, DeviceQMatrix, GgmlType, QMatrix};
use tensor::{DType, Device, Tensor};

use super::CausalLm;
use crate::{Error, Result};

/// Quantizes `model`'s packable matrices to `ty` (Q8_0 or Q4_0) on `device`, where its weights
/// live. Returns how many matrices were packed.
pub fn quantize_weights(model: &CausalLm, ty: GgmlType, device: &Device) -> Result<usize> {
    check_type(ty)?;
    let params: HashMap<String, autograd::Var> = model.named_parameters().into_iter().collect();
    let (mut packed, mut failure) = (0, None);
    model.visit_packed("", &mut |name, slot| {
        if failure.is_some() || slot.is_set() {
            return;
        }
        if let Some(var) = params.get(name) {
            match pack(var, ty, device, slot) {
                Ok(done) => packed += done as usize,
                Err(e) => failure = Some(Error::input(format!("--quantize {ty}: {name}: {e}"))),
            }
        }
    });
    failure.map_or(Ok(packed), Err)
}

/// Packs every bf16 `Linear` weight of a model on the CPU into the bf16 GEMMs' panels
/// (`Bf16Panels`), where the CPU multiplies bf16 with AVX512_BF16 or on AMX tiles (else nothing
/// is done): each prefill product then reads the weight as it is instead of transposing it into
/// panels first. Each weight's `Var` becomes a placeholder, so the memory stays the weights' own.
/// For inference only: a packed weight has no gradient. Returns how many matrices were packed.
///
/// The panels are mappings of their own (on 2 MiB pages, see `Bf16Panels`), so the bytes each
/// weight is freed of go back to the kernel every [`RETURN_EVERY`] bytes
/// ([`crate::heap::return_freed`]) instead of piling up in the heap beside them.
pub fn pack_bf16_panels(model: &CausalLm) -> Result<usize> {
    if !Bf16Panels::worth_packing() {
        return Ok(0);
    }
    let params: HashMap<String, autograd::Var> = model.named_parameters().into_iter().collect();
    let (mut packed, mut failure, mut freed) = (0, None, 0);
    model.visit_packed("", &mut |name, slot| {
        if failure.is_some() || slot.is_set() || !slot.takes_panels() {
            return;
        }
        let Some(var) = params.get(name) else { return };
        if var.dtype() != DType::BF16 || var.rank() != 2 || !var.device().is_cpu() {
            return;
        }
        let done = Bf16Panels::pack(&var.value())
            .and_then(|panels| slot.set_panels(panels))
            .and_then(|()| var.replace_value(placeholder(var, &Device::cpu())?));
        match done {
            Ok(()) => packed += 1,
            Err(e) => failure = Some(Error::input(format!("packing {name} into bf16 panels: {e}"))),
        }
        freed += var.elem_count() * 2;
        if freed >= RETURN_EVERY {
            crate::heap::return_freed();
            freed = 0;
        }
    });
    crate::heap::return_freed();
    failure.map_or(Ok(packed), Err)
}

/// Bytes of packed weights' storage freed between two returns of the heap's free pages (a few
/// layers' worth; each return walks the heap).
const RETURN_EVERY: usize = 64 << 20;

/// Rows widened to f32 and encoded at a time.
const ROWS_PER_STEP: usize = 1024;

/// Appends `t`'s rows (its last dimension a whole number of blocks) encoded as `ty` to `out`, a
/// few rows at a time, so that no f32 copy of a whole matrix (600 MiB for a 151936 x 1024
/// embedding) exists next to it.
pub(crate) fn encode(t: &Tensor, ty: GgmlType, out: &mut Vec<u8>) -> tensor::Result<()> {
    let cols = t.dims().last().copied().unwrap_or(1);
    let rows = t.elem_count() / cols.max(1);
    let all = t.to(&Device::cpu())?.reshape([rows, cols])?;
    for r0 in (0..rows).step_by(ROWS_PER_STEP) {
        let n = ROWS_PER_STEP.min(rows - r0);
        let part: Vec<f32> = all.narrow(0, r0, n)?.to_dtype(DType::F32)?.contiguous()?.to_vec()?;
        out.extend(quant::quantize(ty, &part)?);
    }
    Ok(())
}

/// The types `--quantize` encodes.
pub(crate) fn check_type(ty: GgmlType) -> Result<()> {
    if matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0) {
        Ok(())
    } else {
        Err(Error::input(format!("--quantize takes q8_0 or q4_0, not {ty}")))
    }
}

/// Encodes one [rows, cols] matrix, or [experts, rows, cols] stack, into its slot; false (left
/// as it is) when its rows are not whole blocks.
pub(crate) fn pack(var: &autograd::Var, ty: GgmlType, device: &Device, slot: &PackedSlot) -> tensor::Result<bool> {
    let dims = var.dims().to_vec();
    let (experts, rows, cols) = match *dims.as_slice() {
        [e, r, c] => (e, r, c),
        [r, c] => (1, r, c),
        _ => return Ok(false),
    };
    if cols == 0 || !cols.is_multiple_of(ty.block_size()) {
        return Ok(false);
    }
    let mut bytes = Vec::with_capacity(experts * rows * (cols / ty.block_size()) * ty.type_size());
    encode(&var.value(), ty, &mut bytes)?;
    let stack = (dims.len() == 3).then_some(experts);
    Blocks::new(ty, stack, rows, cols, bytes, device)?.put(slot);
    var.replace_value(placeholder(var, device)?)?;
    Ok(true)
}

/// A matrix, or a stack of experts' matrices, already in ggml blocks on its way to its
/// `PackedSlot`: `QMatrix`es on the CPU, one `DeviceQMatrix` on a GPU.
pub(crate) enum Blocks {
    Cpu { stack: bool, matrices: Vec<QMatrix> },
    Device(DeviceQMatrix),
}

impl Blocks {
    /// `bytes` holds one [rows, cols] matrix of `ty` blocks, or with `stack` `Some(experts)`
    /// that many, one after the other.
    pub(crate) fn new(
        ty: GgmlType,
        stack: Option<usize>,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
        device: &Device,
    ) -> tensor::Result<Blocks> {
        let experts = stack.unwrap_or(1);
        if !device.is_cpu() {
            return Ok(Blocks::Device(DeviceQMatrix::upload_stack(ty, experts, rows, cols, &bytes, device)?));
        }
        let matrix = rows * (cols / ty.block_size().max(1)) * ty.type_size();
        let bytes: Arc<Vec<u8>> = Arc::new(bytes);
        let matrices = (0..experts)
            .map(|e| QMatrix::shared(ty, rows, cols, bytes.clone(), e * matrix))
            .collect::<tensor::Result<Vec<_>>>()?;
        Ok(Blocks::Cpu { stack: stack.is_some(), matrices })
    }

    pub(crate) fn put(self, slot: &PackedSlot) {
        match self {
            Blocks::Cpu { stack: true, matrices } => slot.set_stack(matrices),
            Blocks::Cpu { stack: false, mut matrices } => slot.set(matrices.pop()),
            Blocks::Device(q) => slot.set_device(q),
        }
    }
}

/// The value a packed parameter keeps (as a GGUF load leaves it): its shape, no storage.
pub(crate) fn placeholder(var: &autograd::Var, device: &Device) -> tensor::Result<Tensor> {
    Tensor::zeros((), var.dtype(), device)?.broadcast_to(var.dims())
}
