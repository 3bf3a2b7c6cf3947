//! Experts are stored stacked in this library ([E, out, in] per projection) but in checkpoints
//! either one tensor per expert (`mlp.experts.{e}.gate_proj.weight`, Qwen3-MoE, DeepSeek-V3,
//! Kimi K2) or fused (Llama 4: `feed_forward.experts.gate_up_proj` [E, H, 2I] and
//! `feed_forward.experts.down_proj` [E, I, H], in×out; gpt-oss: `mlp.experts.gate_up_proj`
//! [E, H, 2I] with gate and up columns interleaved, `down_proj` [E, I, H], and the biases
//! `gate_up_proj_bias` [E, 2I] (interleaved too) and `down_proj_bias` [E, H]). This file
//! assembles the stacked form.

use std::collections::HashSet;

use autograd::Var;
use tensor::{DType, Device, Tensor};

use crate::weights::Checkpoint;
use crate::{Error, Result};

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
/// the checkpoint stores it in one of the known per-expert or fused forms. `interleaved`: fused
/// gate and up columns alternate (gpt-oss) instead of gate's half coming first (Llama 4).
pub fn assemble(
    name: &str,
    var: &Var,
    checkpoint: &Checkpoint,
    used: &mut HashSet<String>,
    dtype: DType,
    device: &Device,
    interleaved: bool,
) -> Result<Option<Tensor>> {
    let Some((prefix, projection)) = name.rsplit_once(".experts.") else {
        return Ok(None);
    };
    // MXFP4 (gpt-oss releases): u8 blocks of e2m1 pairs and e8m0 scales in place of the tensor.
    for fused_name in ["gate_up_proj", "down_proj"] {
        let blocks = format!("{prefix}.experts.{fused_name}_blocks");
        if let Some(found) = super::load::resolve(&blocks, checkpoint) {
            return Err(Error::format(
                &checkpoint.describe(),
                format!(
                    "tensor {found} (with its _scales) holds MXFP4-quantized experts, which this loader does not read yet;                      a dequantized (bf16 or f32) checkpoint loads"
                ),
            ));
        }
    }
    if let Some(projection) = projection.strip_suffix(".bias") {
        return fused_bias(prefix, projection, checkpoint, used, device, interleaved);
    }
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
                let part = half(&t, projection == "gate_proj", interleaved)?; // [E, H, I]
                return Ok(Some(part.transpose(1, 2)?.contiguous()?));
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

/// Gate's or up's columns of a fused [.., 2I] tensor: alternate columns when `interleaved`,
/// else the first or second half.
fn half(t: &Tensor, gate: bool, interleaved: bool) -> Result<Tensor> {
    let r = t.rank();
    let width = t.dims()[r - 1] / 2;
    if interleaved {
        let mut dims = t.dims().to_vec();
        dims[r - 1] = width;
        dims.push(2);
        Ok(t.reshape(dims)?.select(r, if gate { 0 } else { 1 })?.contiguous()?)
    } else {
        Ok(t.narrow(r - 1, if gate { 0 } else { width }, width)?.contiguous()?)
    }
}

/// gpt-oss's expert biases: `gate_proj`/`up_proj` from `gate_up_proj_bias` [E, 2I],
/// `down_proj` from `down_proj_bias` [E, H]. Biases stay f32.
fn fused_bias(
    prefix: &str,
    projection: &str,
    checkpoint: &Checkpoint,
    used: &mut HashSet<String>,
    device: &Device,
    interleaved: bool,
) -> Result<Option<Tensor>> {
    let stored = if projection == "down_proj" { "down_proj_bias" } else { "gate_up_proj_bias" };
    let Some(n) = super::load::resolve(&format!("{prefix}.experts.{stored}"), checkpoint) else {
        return Ok(None);
    };
    used.insert(n.clone());
    let t = checkpoint.load(&n, Some(DType::F32), device)?;
    Ok(Some(match projection {
        "down_proj" => t,
        _ => half(&t, projection == "gate_proj", interleaved)?,
    }))
}
