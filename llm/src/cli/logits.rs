//! `llm logits --model DIR --input FILE --out FILE [--device cpu|gpu] [--dtype auto|f32|bf16|f16]`: reads the integer tensor
//! `input_ids` [B, T] from a safetensors file and writes the f32 `logits` [B, T, V].

use std::path::Path;

use tensor::DType;

use crate::models::{LoadOptions, load};
use crate::weights::{Checkpoint, save_safetensors};
use crate::{Error, Result};

/// `weight_dtype` as `--dtype` gives it (`None`: as the checkpoint stores the weights).
pub fn run(
    model_dir: &Path,
    input: &Path,
    out: &Path,
    device: Option<&str>,
    weight_dtype: Option<DType>,
) -> Result<()> {
    let (device, line) = crate::device::pick(device)?;
    eprintln!("{line}");
    let loaded = load(model_dir, &LoadOptions { device: device.clone(), weight_dtype })?;
    let inputs = Checkpoint::open(input)?;
    let meta = inputs.meta("input_ids").ok_or_else(|| Error::format(input, "no tensor named input_ids"))?;
    if meta.shape.len() != 2 || !meta.dtype.is_int() {
        return Err(Error::format(
            input,
            format!("input_ids must be an integer tensor [B, T], got {} {:?}", meta.dtype, meta.shape),
        ));
    }
    let ids = inputs.load("input_ids", Some(DType::I64), &tensor::Device::cpu())?;
    check_ids(&ids.to_vec::<i64>()?, loaded.model.vocab_size(), loaded.config.max_position_embeddings, meta.shape[1])?;
    let ids = ids.to_dtype(DType::U32)?.to(&device)?;
    let output = autograd::no_grad(|| loaded.model.forward(&ids, 0, None, false))?;
    let logits = output.logits.value().to_dtype(DType::F32)?.to(&tensor::Device::cpu())?;
    save_safetensors(out, &[("logits".to_string(), logits)], None)
}

/// Ids must index the vocabulary, and the sequence must fit the model's context.
pub fn check_ids(ids: &[i64], vocab: usize, context: usize, length: usize) -> Result<()> {
    if let Some(bad) = ids.iter().find(|&&id| id < 0 || id as u64 >= vocab as u64) {
        return Err(Error::input(format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    if length > context {
        return Err(Error::input(format!(
            "the sequence has {length} tokens, longer than the model's context of {context}"
        )));
    }
    Ok(())
}
