//! A model from a GGUF file: the config from its metadata, every parameter from the tensor
//! llama.cpp names for it, decoded to f32 (and stored in the load options' weight dtype).

use std::collections::HashSet;
use std::path::Path;

use nn::{Init, ModuleExt};
use tensor::{DType, Device, Tensor};

use super::config::{architecture, model_config};
use super::names::to_gguf;
use super::reader::GgufFile;
use crate::models::{LoadOptions, Loaded, build};
use crate::{Error, Result};

/// llama.cpp's converter reorders the rows of each head of q and k for the `llama` architecture
/// (`LlamaModel.permute`: rows [half, pair] become [pair, half], so that ggml's RoPE, which
/// rotates adjacent pairs, matches the checkpoint's rotation of the two halves). With
/// `inverse` false this applies that reordering (for writing); true undoes it (for reading).
/// `rows` is the leading dimension, `width` the elements per row.
pub fn permute_rows(values: &[f32], heads: usize, width: usize, inverse: bool) -> Option<Vec<f32>> {
    let rows = values.len() / width.max(1);
    if heads == 0 || width == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        return None;
    }
    let hd = rows / heads;
    let mut out = vec![0.0f32; values.len()];
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

/// Reads the GGUF file at `path` into a model on `options.device`.
pub fn load_gguf(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    let file = GgufFile::open(path)?;
    let config = model_config(&file)?;
    let arch = architecture(&file)?.to_string();
    let model = build(&config, &mut Init::placeholders(&options.device))?;
    let mut used: HashSet<String> = HashSet::new();
    let cpu = Device::cpu();
    for (name, var) in model.named_parameters() {
        let gguf = to_gguf(&name)
            .ok_or_else(|| Error::format(path, format!("parameter {name} has no GGUF tensor name in this reader")))?;
        let info = file
            .tensor(&gguf)
            .ok_or_else(|| Error::format(path, format!("missing tensor {gguf} (the model's {name})")))?;
        if info.shape() != var.dims() {
            return Err(Error::format(
                path,
                format!("tensor {gguf} has shape {:?}, but the config implies {:?}", info.shape(), var.dims()),
            ));
        }
        let (mut values, shape) = file.dequantize(&gguf)?;
        if arch == "llama" {
            let heads = if gguf.contains(".attn_q.") {
                Some(config.num_attention_heads)
            } else if gguf.contains(".attn_k.") {
                Some(config.num_key_value_heads)
            } else {
                None
            };
            if let Some(heads) = heads {
                let width = if shape.len() == 2 { shape[1] } else { 1 };
                values = permute_rows(&values, heads, width, true).ok_or_else(|| {
                    Error::format(
                        path,
                        format!("tensor {gguf}: {} rows do not split into {heads} heads of pairs", shape[0]),
                    )
                })?;
            }
        }
        let dtype = if var.rank() >= 2 && !name.contains("embed_tokens") {
            options.weight_dtype.unwrap_or(DType::F32)
        } else {
            DType::F32
        };
        let tensor = Tensor::from_vec(values, shape, &cpu)?;
        let tensor = if dtype == DType::F32 { tensor } else { tensor.to_dtype(dtype)? };
        var.replace_value(tensor.to(&options.device)?)?;
        used.insert(gguf);
    }
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
