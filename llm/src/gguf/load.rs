//! A model from a GGUF file: the config from its metadata, every parameter from the tensor
//! llama.cpp names for it, decoded to f32 (and stored in the load options' weight dtype, or,
//! with none asked for, BF16 and F16 matrices in their own dtype: see [`stored_dtype`]).
//!
//! On the CPU with no weight dtype asked for (`LoadOptions::weight_dtype` None: keep what the
//! file stores), the Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K and MXFP4 matrices of
//! `Linear`s, of the embedding table and of the routed experts (one matrix per expert of each
//! stacked projection) stay packed instead ([`QMatrix`]: the k-quants borrow the memory-mapped
//! file, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and MXFP4 are copied into their interleaved layout),
//! multiplied on their blocks; their `Var`s keep the storage-free placeholders they were built
//! with. On a GPU, likewise, the Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K and MXFP4 matrices
//! of `Linear`s, of the embedding table and of the stacked experts go to the device as blocks
//! ([`DeviceQMatrix`], multiplied and gathered by WGSL kernels).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use nn::{Init, Module, ModuleExt};
use tensor::quant::{DeviceQMatrix, QMatrix};
use tensor::{DType, Device, Tensor};

use super::config::{architecture, model_config};
use super::names::to_gguf;
use super::reader::GgufFile;
use crate::models::{LoadOptions, Loaded, build, registry};
use crate::{Error, Result};

/// llama.cpp's converter reorders the rows of each head of q and k for the `llama` architecture
/// (`LlamaModel.permute`: rows [half, pair] become [pair, half], so that ggml's RoPE, which
/// rotates adjacent pairs, matches the checkpoint's rotation of the two halves). With
/// `inverse` false this applies that reordering (for writing); true undoes it (for reading).
/// `rows` is the leading dimension, `width` the elements per row.
pub fn permute_rows<T: Copy + Default>(values: &[T], heads: usize, width: usize, inverse: bool) -> Option<Vec<T>> {
    let rows = values.len() / width.max(1);
    if heads == 0 || width == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        return None;
    }
    let hd = rows / heads;
    let mut out = vec![T::default(); values.len()];
    for h in 0..heads {
        for t in 0..2 {
            for j in 0..hd / 2 {
                let hf = h * hd + t * hd / 2 + j;
                let gg = h * hd + 2 * j + t;
                let (from, to) = if inverse { (gg, hf) } else { (hf, gg) };
                out[to * width..(to + 1) * width].copy_from_slice(&values[from * width..(from + 1) * width]);
            }
        }
    }
    Some(out)
}

/// The dtype a matrix stored as `ty` keeps when no weight dtype is asked for: BF16 and F16 stay
/// half precision (as a Hugging Face bf16 release does: half the memory and half the bytes each
/// decoded token reads of an f32 copy; the kernels widen them); every other type is decoded to
/// f32 (the block types reach here only where they cannot stay packed).
fn stored_dtype(ty: tensor::quant::GgmlType) -> DType {
    match ty {
        tensor::quant::GgmlType::BF16 => DType::BF16,
        tensor::quant::GgmlType::F16 => DType::F16,
        _ => DType::F32,
    }
}

/// Reads the GGUF file at `path` into a model on `options.device`.
pub fn load_gguf(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    let file = GgufFile::open(path)?;
    let config = model_config(&file)?;
    let arch = architecture(&file)?.to_string();
    let described = registry::gguf(&arch).expect("model_config read the file, so its architecture is registered");
    let model = build(&config, &mut Init::placeholders(&options.device))?;
    let shift_norms = super::export::unit_offset_norm(&config);
    // The Llama 3 RoPE divisors became the config's rope scaling.
    let mut used: HashSet<String> = ["rope_freqs.weight".to_string()].into();
    let cpu = Device::cpu();
    let mut packable = HashSet::new();
    if options.weight_dtype.is_none() {
        model.visit_packed("", &mut |name, _| {
            packable.insert(name.to_string());
        });
    }
    // Each packed parameter's matrices, and whether they are a stack of experts.
    let mut packed: HashMap<String, (bool, Vec<QMatrix>)> = HashMap::new();
    let mut on_device: HashMap<String, DeviceQMatrix> = HashMap::new();
    for (name, var) in model.named_parameters() {
        if let Some((values, parts)) = (described.join)(&config, &name, &file)? {
            // Stored split (DeepSeek's `kv_b_proj`): decoded and joined, never packed.
            let tensor = Tensor::from_vec(values, var.dims().to_vec(), &cpu)?;
            // The parts' own dtype where they share one (a BF16 file's halves stay bf16).
            let stored = parts
                .iter()
                .filter_map(|part| file.tensor(part))
                .map(|info| stored_dtype(info.ty))
                .reduce(|a, b| if a == b { a } else { DType::F32 })
                .unwrap_or(DType::F32);
            let dtype = options.weight_dtype.unwrap_or(stored);
            let tensor = if dtype == DType::F32 { tensor } else { tensor.to_dtype(dtype)? };
            var.replace_value(tensor.to(&options.device)?)?;
            for part in parts {
                if let Some(info) = file.tensor(&part) {
                    file.release(info);
                }
                used.insert(part);
            }
            continue;
        }
        let gguf = to_gguf(&described, &name)
            .ok_or_else(|| Error::format(path, format!("parameter {name} has no GGUF tensor name in this reader")))?;
        let info = file
            .tensor(&gguf)
            .ok_or_else(|| Error::format(path, format!("missing tensor {gguf} (the model's {name})")))?;
        if info.shape() != var.dims()[..] {
            return Err(Error::format(
                path,
                format!("tensor {gguf} has shape {:?}, but the config implies {:?}", info.shape(), var.dims()),
            ));
        }
        // llama.cpp's q/k row order for pairwise RoPE (undone below), as the heads of rows.
        let permuted = match described.permuted_qk {
            true if gguf.contains(".attn_q.") => Some(config.num_attention_heads),
            true if gguf.contains(".attn_k.") => Some(config.num_key_value_heads),
            _ => None,
        };
        let unpermute = |what: &str| {
            Error::format(path, format!("tensor {gguf}: {what} rows do not split into {permuted:?} heads of pairs"))
        };
        let device_packable = !options.device.is_cpu()
            && packable.contains(&name)
            && DeviceQMatrix::supports(info.ty)
            && matches!(info.dims.len(), 2 | 3);
        if device_packable {
            // [rows, cols], or [experts, rows, cols] for stacked experts.
            let (experts, rows, cols) = match *info.shape().as_slice() {
                [e, r, c] => (e, r, c),
                [r, c] => (1, r, c),
                _ => unreachable!("two or three dimensions"),
            };
            let reordered = match permuted {
                Some(heads) => Some(
                    permute_rows(file.bytes(info), heads, info.size as usize / rows.max(1), true)
                        .ok_or_else(|| unpermute(&rows.to_string()))?,
                ),
                None => None,
            };
            let bytes = reordered.as_deref().unwrap_or_else(|| file.bytes(info));
            let q = DeviceQMatrix::upload_stack(info.ty, experts, rows, cols, bytes, &options.device)
                .map_err(|e| Error::format(path, format!("tensor {gguf}: {e}")))?;
            file.release(info);
            on_device.insert(name.clone(), q);
            used.insert(gguf);
            continue;
        }
        if options.device.is_cpu()
            && packable.contains(&name)
            && QMatrix::supports(info.ty)
            && matches!(info.dims.len(), 2 | 3)
        {
            // [rows, cols], or [experts, rows, cols] for stacked experts: one matrix each.
            let (experts, rows, cols) = match *info.shape().as_slice() {
                [e, r, c] => (e, r, c),
                [r, c] => (1, r, c),
                _ => unreachable!("two or three dimensions"),
            };
            let matrix_bytes = rows * (cols / info.ty.block_size()) * info.ty.type_size();
            let qs: tensor::Result<Vec<QMatrix>> = match permuted {
                Some(heads) => {
                    let row_bytes = info.size as usize / rows.max(1);
                    let bytes = permute_rows(file.bytes(info), heads, row_bytes, true)
                        .ok_or_else(|| unpermute(&rows.to_string()))?;
                    QMatrix::new(info.ty, rows, cols, bytes).map(|q| vec![q])
                }
                None => {
                    let (bytes, start) = file.shared_bytes(info);
                    (0..experts)
                        .map(|e| QMatrix::shared(info.ty, rows, cols, bytes.clone(), start + e * matrix_bytes))
                        .collect()
                }
            };
            let qs = qs.map_err(|e| Error::format(path, format!("tensor {gguf}: {e}")))?;
            if permuted.is_some() || tensor::quant::interleave::applies(info.ty) {
                file.release(info); // copied (row order undone, or interleaved)
            }
            packed.insert(name.clone(), (info.dims.len() == 3, qs));
            used.insert(gguf);
            continue;
        }
        let (mut values, shape) = file.dequantize(&gguf)?;
        file.release(info);
        if shift_norms && gguf.ends_with("norm.weight") {
            // The converter stored Gemma's `(1 + w)` norms as `w + 1` (see `unit_offset_norm`).
            values.iter_mut().for_each(|v| *v -= 1.0);
        }
        if let Some(heads) = permuted {
            let width = if shape.len() == 2 { shape[1] } else { 1 };
            values = permute_rows(&values, heads, width, true).ok_or_else(|| unpermute(&shape[0].to_string()))?;
        }
        let dtype = if var.rank() >= 2 && !name.ends_with(".bias") {
            options.weight_dtype.unwrap_or_else(|| stored_dtype(info.ty))
        } else {
            DType::F32
        };
        let tensor = Tensor::from_vec(values, shape, &cpu)?;
        let tensor = if dtype == DType::F32 { tensor } else { tensor.to_dtype(dtype)? };
        var.replace_value(tensor.to(&options.device)?)?;
        used.insert(gguf);
    }
    model.visit_packed("", &mut |name, slot| match (packed.remove(name), on_device.remove(name)) {
        (Some((true, qs)), _) => slot.set_stack(qs),
        (Some((false, mut qs)), _) => slot.set(qs.pop()),
        (None, Some(q)) => slot.set_device(q),
        (None, None) => {}
    });
    // (`output.weight` is present exactly when the embeddings are untied, so it is always used.)
    if let Some(extra) = file.tensors.iter().find(|t| !used.contains(&t.name)) {
        return Err(Error::format(
            path,
            format!("unexpected tensor {} that the {} config does not account for", extra.name, config.model_type),
        ));
    }
    Ok(Loaded { config, model })
}

/// Whether `path` is a GGUF file (by its first four bytes).
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file()
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && magic == super::reader::MAGIC
}
