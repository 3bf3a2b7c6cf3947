//! Experts are stored stacked in this library ([E, out, in] per projection) but in checkpoints
//! either one tensor per expert (`mlp.experts.{e}.gate_proj.weight`, Qwen3-MoE, DeepSeek-V3,
//! Kimi K2) or fused (Llama 4: `feed_forward.experts.gate_up_proj` [E, H, 2I] and
//! `feed_forward.experts.down_proj` [E, I, H], in×out). This file assembles the stacked form.

use std::collections::HashSet;

use autograd::Var;
use tensor::{DType, Device, Tensor};

use crate::Result;
use crate::weights::Checkpoint;

/// The stored dtype of the tensors a stacked expert parameter is assembled from (the first
/// expert's, or the fused tensor's), if the checkpoint holds them.
pub fn stored_dtype(name: &str, checkpoint: &Checkpoint) -> Option<DType> {
    let (prefix, projection) = name.rsplit_once(".experts.")?;
    let projection = projection.trim_end_matches(".weight");
    let fused = if projection == "down_proj" { "down_proj" } else { "gate_up_proj" };
    [format!("{prefix}.experts.0.{projection}.weight"), format!("{prefix}.experts.{fused}")]
        .iter()
        .find_map(|n| super::load::resolve(n, checkpoint))
        .and_then(|n| checkpoint.stored_dtype(&n))
}

/// The stacked expert tensor named `name` (e.g. `model.layers.3.mlp.experts.gate_proj`), if
/// the checkpoint stores it in one of the known per-expert or fused forms.
pub fn assemble(
    name: &str,
    var: &Var,
    checkpoint: &Checkpoint,
    used: &mut HashSet<String>,
    dtype: DType,
    device: &Device,
) -> Result<Option<Tensor>> {
    let Some((prefix, projection)) = name.rsplit_once(".experts.") else {
        return Ok(None);
    };
    let projection = projection.trim_end_matches(".weight");
    let experts = var.dims()[0];
    // One tensor per expert.
    let per_expert: Vec<Option<String>> = (0..experts)
        .map(|e| super::load::resolve(&format!("{prefix}.experts.{e}.{projection}.weight"), checkpoint))
        .collect();
    if per_expert.iter().all(Option::is_some) {
        let parts = per_expert
            .into_iter()
            .flatten()
            .map(|n| {
                used.insert(n.clone());
                checkpoint.load(&n, Some(dtype), device)
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Some(Tensor::stack(&parts.iter().collect::<Vec<_>>(), 0usize)?));
    }
    // Llama 4's fused tensors, stored in x out.
    let fused = |n: &str| super::load::resolve(&format!("{prefix}.experts.{n}"), checkpoint);
    match projection {
        "gate_proj" | "up_proj" => {
            if let Some(n) = fused("gate_up_proj") {
                used.insert(n.clone());
                let t = checkpoint.load(&n, Some(dtype), device)?; // [E, H, 2I]
                let width = t.dims()[2] / 2;
                let start = if projection == "gate_proj" { 0 } else { width };
                return Ok(Some(t.narrow(2, start, width)?.transpose(1, 2)?.contiguous()?));
            }
        }
        "down_proj" => {
            if let Some(n) = fused("down_proj") {
                used.insert(n.clone());
                let t = checkpoint.load(&n, Some(dtype), device)?; // [E, I, H]
                return Ok(Some(t.transpose(1, 2)?.contiguous()?));
            }
        }
        _ => {}
    }
    Ok(None)
}
