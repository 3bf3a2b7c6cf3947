//! `--quantize q8_0|q4_0`: a model loaded from safetensors with its matrices quantized at load
//! and kept as blocks, as a GGUF file of that type would load: every matrix a loader may pack
//! (each `Linear`, the embedding table, the routed experts; see `nn::PackedSlot`) whose rows are
//! whole blocks is encoded with ggml's quantizer and put in its slot (on the CPU a `QMatrix`, on
//! a GPU a `DeviceQMatrix`), and its `Var` becomes a storage-free placeholder, so the f32 or
//! bf16 copy is freed. Routers, norms and biases stay as loaded, as llama.cpp's quantizer leaves
//! them.

use std::collections::HashMap;

use nn::{Module, ModuleExt, PackedSlot};
use tensor::quant::{self, DeviceQMatrix, GgmlType, QMatrix};
use tensor::{DType, Device, Tensor};

use super::CausalLm;
use crate::{Error, Result};

/// Quantizes `model`'s packable matrices to `ty` (Q8_0 or Q4_0) on `device`, where its weights
/// live. Returns how many matrices were packed.
pub fn quantize_weights(model: &CausalLm, ty: GgmlType, device: &Device) -> Result<usize> {
    if !matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0) {
        return Err(Error::input(format!("--quantize takes q8_0 or q4_0, not {ty}")));
    }
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

/// Encodes one [rows, cols] matrix, or [experts, rows, cols] stack, into its slot; false (left
/// as it is) when its rows are not whole blocks.
fn pack(var: &autograd::Var, ty: GgmlType, device: &Device, slot: &PackedSlot) -> tensor::Result<bool> {
    let dims = var.dims().to_vec();
    let (experts, rows, cols) = match *dims.as_slice() {
        [e, r, c] => (e, r, c),
        [r, c] => (1, r, c),
        _ => return Ok(false),
    };
    if cols == 0 || !cols.is_multiple_of(ty.block_size()) {
        return Ok(false);
    }
    let values: Vec<f32> = var.value().to(&Device::cpu())?.to_dtype(DType::F32)?.contiguous()?.to_vec()?;
    if device.is_cpu() {
        if dims.len() == 3 {
            let matrix = rows * cols;
            let stack = (0..experts)
                .map(|e| QMatrix::quantize(ty, rows, cols, &values[e * matrix..(e + 1) * matrix]))
                .collect::<tensor::Result<Vec<_>>>()?;
            slot.set_stack(stack);
        } else {
            slot.set(Some(QMatrix::quantize(ty, rows, cols, &values)?));
        }
    } else {
        let bytes = quant::quantize(ty, &values)?;
        slot.set_device(DeviceQMatrix::upload_stack(ty, experts, rows, cols, &bytes, device)?);
    }
    // The placeholder a GGUF load leaves: the right shape, no storage.
    var.replace_value(Tensor::zeros((), var.dtype(), device)?.broadcast_to(dims)?)?;
    Ok(true)
}
