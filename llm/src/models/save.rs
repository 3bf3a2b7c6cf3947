//! Writing a model back as a Hugging Face checkpoint (`config.json`, `model.safetensors`,
//! `tokenizer.json` when the source had one) under the names its family's checkpoints use, so
//! `llm` and transformers both load it: stacked experts are split back per expert, or fused as
//! Llama 4 stores them.

use std::path::Path;

use nn::ModuleExt;
use tensor::{DType, Tensor};

use super::decoder::CausalLm;
use crate::config::{Family, ModelConfig};
use crate::weights::save_safetensors;
use crate::{Error, Result};

/// The checkpoint tensors for one parameter.
fn hf_tensors(name: &str, value: Tensor, family: Family) -> Result<Vec<(String, Tensor)>> {
    let value = value.to(&tensor::Device::cpu())?;
    let Some((prefix, rest)) = name.rsplit_once(".experts.") else { return Ok(vec![(name.to_string(), value)]) };
    let projection = rest.trim_end_matches(".weight");
    if family == Family::Llama4 {
        // Llama 4: gate_up_proj [E, H, 2I] (gate first) and down_proj [E, I, H], in x out.
        return Ok(match projection {
            "gate_proj" | "up_proj" => {
                vec![(format!("{prefix}.experts.{projection}.__fuse"), value.transpose(1, 2)?.contiguous()?)]
            }
            _ => vec![(format!("{prefix}.experts.down_proj"), value.transpose(1, 2)?.contiguous()?)],
        });
    }
    (0..value.dims()[0])
        .map(|e| Ok((format!("{prefix}.experts.{e}.{projection}.weight"), value.select(0, e)?.contiguous()?)))
        .collect()
}

/// Saves `model` into `dir` (created if needed), copying the config (and tokenizer) from `source`.
pub fn save_checkpoint(model: &CausalLm, config: &ModelConfig, source: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in model.named_parameters() {
        tensors.extend(hf_tensors(&name, var.value(), config.family)?);
    }
    // Join Llama 4's gate and up halves into gate_up_proj.
    let fused: Vec<(String, Tensor)> = tensors.iter().filter(|(n, _)| n.ends_with(".__fuse")).cloned().collect();
    tensors.retain(|(n, _)| !n.ends_with(".__fuse"));
    for (name, gate) in fused.iter().filter(|(n, _)| n.ends_with(".gate_proj.__fuse")) {
        let prefix = name.trim_end_matches(".gate_proj.__fuse");
        let up = fused
            .iter()
            .find(|(n, _)| n == &format!("{prefix}.up_proj.__fuse"))
            .ok_or_else(|| Error::Config(format!("{prefix}: gate_proj without up_proj")))?;
        tensors.push((format!("{prefix}.gate_up_proj"), Tensor::cat(&[gate, &up.1], 2)?));
    }
    for (_, t) in tensors.iter_mut() {
        if t.dtype() == DType::F64 {
            *t = t.to_dtype(DType::F32)?;
        }
    }
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    save_safetensors(&dir.join("model.safetensors"), &tensors, Some(metadata))?;
    let config_source = if source.is_dir() { source.join("config.json") } else { source.to_path_buf() };
    std::fs::copy(&config_source, dir.join("config.json")).map_err(|e| Error::io(&config_source, e))?;
    let tokenizer = source.join("tokenizer.json");
    if tokenizer.is_file() {
        std::fs::copy(&tokenizer, dir.join("tokenizer.json")).map_err(|e| Error::io(&tokenizer, e))?;
    }
    Ok(())
}
