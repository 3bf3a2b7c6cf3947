//! Experts are stored stacked in this library ([E, out, in] per projection) but in checkpoints
//! either one tensor per expert (`mlp.experts.{e}.gate_proj.weight`, Qwen3-MoE, DeepSeek-V3,
//! Kimi K2) or fused (Llama 4: `feed_forward.experts.gate_up_proj` [E, H, 2I] and
//! `feed_forward.experts.down_proj` [E, I, H], in×out; gpt-oss: `mlp.experts.gate_up_proj`
//! [E, H, 2I] with gate and up columns interleaved, `down_proj` [E, I, H], and the biases
//! `gate_up_proj_bias` [E, 2I] (interleaved too) and `down_proj_bias` [E, H]; gpt-oss's
//! releases store those two weights as MXFP4 `_blocks` + `_scales`, output channels first). This
//! file assembles the stacked form.

use std::collections::HashSet;

use autograd::Var;
use tensor::{DType, Device, Tensor};

use crate::weights::Checkpoint;
use crate::{Error, Result};

/// A stacked expert weight's name split at `.experts.`: the layer's prefix and the projection
/// (`gate_proj`, `up_proj`, `down_proj`, without `.weight`); None for other parameters and for
/// the experts' biases.
fn expert_weight(name: &str) -> Option<(&str, &str)> {
    let (prefix, projection) = name.rsplit_once(".experts.")?;
    (!projection.ends_with(".bias")).then(|| (prefix, projection.trim_end_matches(".weight")))
}

/// The stored dtype of the tensors a stacked expert parameter is assembled from (the first
/// expert's, or the fused tensor's), if the checkpoint holds them.
pub fn stored_dtype(name: &str, checkpoint: &Checkpoint) -> Option<DType> {
    let (prefix, projection) = expert_weight(name)?;
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
    if let Some(projection) = projection.strip_suffix(".bias") {
        return fused_bias(prefix, projection, checkpoint, used, device, interleaved);
    }
    let projection = projection.trim_end_matches(".weight");
    if let Some(per_expert) = per_expert_names(name, var, checkpoint) {
        let parts = per_expert
            .into_iter()
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

/// The checkpoint's names of the per-expert tensors (`mlp.experts.{e}.gate_proj.weight`, Qwen3-MoE,
/// DeepSeek-V3, Kimi K2) that the stacked expert weight `name` is made of, if it stores them so.
pub fn per_expert_names(name: &str, var: &Var, checkpoint: &Checkpoint) -> Option<Vec<String>> {
    let (prefix, projection) = expert_weight(name)?;
    if var.rank() != 3 {
        return None;
    }
    (0..var.dims()[0])
        .map(|e| super::load::resolve(&format!("{prefix}.experts.{e}.{projection}.weight"), checkpoint))
        .collect()
}

/// gpt-oss's released experts: `{prefix}.experts.gate_up_proj_blocks` [E, 2I, H/32, 16] and
/// `down_proj_blocks` [E, H, I/32, 16] of E2M1 codes with their `_scales` [E, rows, groups] of
/// E8M0 exponents, rows being output channels (gate's and up's interleaved in `gate_up`, as the
/// fused tensor's columns are). Returns the stacked weight `name` ([E, out, in]) as ggml MXFP4
/// blocks, or None when the checkpoint does not store it so.
pub fn mxfp4_blocks(
    name: &str,
    var: &Var,
    checkpoint: &Checkpoint,
    used: &mut HashSet<String>,
    interleaved: bool,
) -> Result<Option<Vec<u8>>> {
    let Some((prefix, projection)) = expert_weight(name) else {
        return Ok(None);
    };
    let fused = match projection {
        "gate_proj" | "up_proj" => "gate_up_proj",
        "down_proj" => "down_proj",
        _ => return Ok(None),
    };
    let Some(blocks_name) = super::load::resolve(&format!("{prefix}.experts.{fused}_blocks"), checkpoint) else {
        return Ok(None);
    };
    let scales_name = format!("{}_scales", blocks_name.trim_end_matches("_blocks"));
    let path = checkpoint.describe();
    let (blocks, block_shape) = checkpoint.u8_bytes(&blocks_name)?;
    let (scales, scale_shape) = checkpoint.u8_bytes(&scales_name)?;
    let &[experts, out, cols] = &var.dims()[..] else {
        return Err(Error::format(&path, format!("parameter {name} is not a stack of expert matrices")));
    };
    let stored_rows = if fused == "gate_up_proj" { 2 * out } else { out };
    let groups = cols / 32;
    let shapes_fit = cols.is_multiple_of(32)
        && block_shape == [experts, stored_rows, groups, 16]
        && scale_shape == [experts, stored_rows, groups];
    if !shapes_fit {
        return Err(Error::format(
            &path,
            format!(
                "tensors {blocks_name} {block_shape:?} and {scales_name} {scale_shape:?}: the config implies \
                 [{experts}, {stored_rows}, {groups}, 16] and [{experts}, {stored_rows}, {groups}] (32 weights per scale)"
            ),
        ));
    }
    // Which stored row each of this projection's rows is.
    let row = |r: usize| match (projection, interleaved) {
        ("down_proj", _) => r,
        ("gate_proj", true) => 2 * r,
        ("up_proj", true) => 2 * r + 1,
        ("gate_proj", false) => r,
        _ => out + r,
    };
    let mut ggml = Vec::with_capacity(experts * out * groups * 17);
    for e in 0..experts {
        for r in 0..out {
            let at = e * stored_rows + row(r);
            let codes = &blocks[at * groups * 16..(at + 1) * groups * 16];
            let exps = &scales[at * groups..(at + 1) * groups];
            ggml.extend(
                tensor::quant::mxfp4::split_to_ggml(codes, exps)
                    .map_err(|e| Error::format(&path, format!("tensor {blocks_name}: {e}")))?,
            );
        }
    }
    // Gate's and up's rows come from the same tensors: their pages go once both are read.
    if projection != "gate_proj" {
        checkpoint.release_tensor(&blocks_name);
        checkpoint.release_tensor(&scales_name);
    }
    used.insert(blocks_name);
    used.insert(scales_name);
    Ok(Some(ggml))
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
