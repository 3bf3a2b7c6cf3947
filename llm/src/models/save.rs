//! Writing a model back as a Hugging Face checkpoint (`config.json`, `model.safetensors`,
//! `tokenizer.json` when the source had one) under the names its family's checkpoints use, so
//! `llm` and transformers both load it: stacked experts are split back per expert, or fused as
//! Llama 4 and gpt-oss store them (gpt-oss with gate and up columns interleaved, and its
//! biases as `gate_up_proj_bias` and `down_proj_bias`).

use std::path::Path;

use nn::ModuleExt;
use tensor::{DType, Tensor};

use super::decoder::CausalLm;
use super::recipe::ExpertStorage;
use crate::config::ModelConfig;
use crate::weights::save_safetensors;
use crate::{Error, Result};

/// The checkpoint tensors for one parameter.
fn hf_tensors(name: &str, value: Tensor, storage: ExpertStorage) -> Result<Vec<(String, Tensor)>> {
    let value = value.to(&tensor::Device::cpu())?;
    let Some((prefix, rest)) = name.rsplit_once(".experts.") else { return Ok(vec![(name.to_string(), value)]) };
    if storage == ExpertStorage::FusedInterleaved {
        // Gate and up [E, I, H] go in x out as [E, H, I], to be interleaved by `fuse`; biases
        // [E, I] are interleaved the same way.
        return Ok(match rest {
            "gate_proj.weight" | "up_proj.weight" => {
                vec![(format!("{prefix}.experts.{rest}.__fuse"), value.transpose(1, 2)?.contiguous()?)]
            }
            "gate_proj.bias" | "up_proj.bias" => vec![(format!("{prefix}.experts.{rest}.__fuse"), value)],
            "down_proj.bias" => vec![(format!("{prefix}.experts.down_proj_bias"), value)],
            _ => vec![(format!("{prefix}.experts.down_proj"), value.transpose(1, 2)?.contiguous()?)],
        });
    }
    let projection = rest.trim_end_matches(".weight");
    if storage == ExpertStorage::FusedHalves {
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
    save_weights(model, config, dir, DType::F32)?;
    let config_source = if source.is_dir() { source.join("config.json") } else { source.to_path_buf() };
    for (from, name) in [(config_source, "config.json"), (source.join("tokenizer.json"), "tokenizer.json")] {
        let to = dir.join(name);
        // Copying a file onto itself would truncate it: saving back into the source keeps it.
        let same = from.canonicalize().ok().zip(to.canonicalize().ok()).is_some_and(|(a, b)| a == b);
        if from.is_file() && !same {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        } else if !from.is_file() && name == "config.json" {
            return Err(Error::format(&from, "no config.json to copy next to the saved weights"));
        }
    }
    Ok(())
}

/// How checkpoints of the config's architecture store experts.
pub fn expert_storage(config: &ModelConfig) -> ExpertStorage {
    config.recipe().experts.map_or(ExpertStorage::PerExpert, |e| e.storage)
}

/// Writes `dir/model.safetensors` with every parameter of `model` under its Hugging Face name,
/// floating-point tensors stored as `dtype` (F32, or BF16 / F16 to halve the file).
pub fn save_weights(model: &CausalLm, config: &ModelConfig, dir: &Path, dtype: DType) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::input(format!("weights can be saved as f32, f16 or bf16, not {dtype}")));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let storage = expert_storage(config);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in model.named_parameters() {
        tensors.extend(hf_tensors(&name, var.value(), storage)?);
    }
    // Join gate and up into gate_up_proj: Llama 4's halves, gpt-oss's interleaved columns.
    let fused: Vec<(String, Tensor)> = tensors.iter().filter(|(n, _)| n.ends_with(".__fuse")).cloned().collect();
    tensors.retain(|(n, _)| !n.ends_with(".__fuse"));
    let interleaved = storage == ExpertStorage::FusedInterleaved;
    for (gate_suffix, up_suffix, joined) in [
        (".gate_proj.__fuse", ".up_proj.__fuse", "gate_up_proj"),
        (".gate_proj.weight.__fuse", ".up_proj.weight.__fuse", "gate_up_proj"),
        (".gate_proj.bias.__fuse", ".up_proj.bias.__fuse", "gate_up_proj_bias"),
    ] {
        for (name, gate) in fused.iter().filter(|(n, _)| n.ends_with(gate_suffix)) {
            let prefix = name.trim_end_matches(gate_suffix);
            let up = fused
                .iter()
                .find(|(n, _)| n == &format!("{prefix}{up_suffix}"))
                .ok_or_else(|| Error::Config(format!("{prefix}: gate_proj without up_proj")))?;
            let last = gate.rank() - 1;
            let t = if interleaved {
                let mut dims = gate.dims().to_vec();
                dims[last] *= 2;
                Tensor::stack(&[gate, &up.1], -1)?.reshape(dims)?
            } else {
                Tensor::cat(&[gate, &up.1], last)?
            };
            tensors.push((format!("{prefix}.{joined}"), t));
        }
    }
    for (_, t) in tensors.iter_mut() {
        if t.dtype().is_float() && t.dtype() != dtype {
            *t = t.to_dtype(dtype)?;
        }
    }
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    save_safetensors(&dir.join("model.safetensors"), &tensors, Some(metadata))
}
