//! Filling a model's parameters from a checkpoint by their Hugging Face names. Every parameter
//! must be found with its exact shape, and every tensor in the checkpoint must be used (or be
//! one of the documented kinds this text-only decoder leaves out), so a checkpoint that does not
//! match its config is an error naming the tensor, not a model that silently computes nonsense.

use std::collections::{HashMap, HashSet};

use autograd::Var;
use nn::{Module, ModuleExt};
use tensor::quant::GgmlType;
use tensor::{DType, Device, Tensor};

use super::decoder::CausalLm;
use super::pack::{Blocks, placeholder};
use super::recipe::ExpertStorage;
use crate::config::ModelConfig;
use crate::weights::Checkpoint;
use crate::{Error, Result};

/// How to place the weights.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub device: Device,
    /// The dtype of matmul weights (projections, experts, output head) and of the embedding
    /// table: `None` keeps each as the checkpoint stores it (f64 becomes f32), so a
    /// bf16 release stays bf16 and each decoded token reads half the bytes of an f32 copy;
    /// `Some` converts them. Norms and biases stay f32, as does all arithmetic (half-precision
    /// weights are widened inside the kernels).
    pub weight_dtype: Option<DType>,
}

impl LoadOptions {
    /// f32 weights on the CPU: what training and the reference comparisons use.
    pub fn cpu() -> LoadOptions {
        LoadOptions { device: Device::cpu(), weight_dtype: Some(DType::F32) }
    }

    /// f32 weights on `device`.
    pub fn f32(device: &Device) -> LoadOptions {
        LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) }
    }
}

/// Checkpoint tensors a text-only decoder does not use: vision towers and projectors of the
/// multimodal releases, DeepSeek's multi-token-prediction layers, and precomputed RoPE buffers
/// some exporters save.
fn ignorable(name: &str, config: &ModelConfig) -> bool {
    const VISION: [&str; 4] = ["vision_tower.", "vision_model.", "multi_modal_projector.", "model.vision_tower."];
    if VISION.iter().any(|p| name.starts_with(p) || name.contains(&format!(".{p}")))
        || name.ends_with("rotary_emb.inv_freq")
    {
        return true;
    }
    if config.mtp_layers > 0 {
        for l in config.num_hidden_layers..config.num_hidden_layers + config.mtp_layers {
            if name.starts_with(&format!("model.layers.{l}.")) {
                return true;
            }
        }
    }
    false
}

/// Where a parameter's tensor sits in a checkpoint: its own name, or the name a multimodal
/// release gives its text decoder (`language_model.model.layers...` in Hub checkpoints,
/// `model.language_model.layers...` as transformers 5 saves them).
pub fn resolve(name: &str, checkpoint: &Checkpoint) -> Option<String> {
    let mut candidates = vec![name.to_string(), format!("language_model.{name}")];
    if let Some(rest) = name.strip_prefix("model.") {
        candidates.push(format!("model.language_model.{rest}"));
    }
    candidates.into_iter().find(|c| checkpoint.contains(c))
}

/// Whether a parameter is kept in `weight_dtype`: every matmul weight and the embedding table
/// (both devices gather half-precision rows and widen only the rows picked, so a bf16 table,
/// and the tied head that reads it, stay bf16).
fn follows_weight_dtype(name: &str, var: &Var) -> bool {
    var.rank() >= 2 && !name.ends_with(".bias")
}

/// The dtype a parameter is loaded in: as asked, or as stored (floats wider than f32 narrowed).
fn parameter_dtype(name: &str, var: &Var, checkpoint: &Checkpoint, options: &LoadOptions) -> DType {
    if !follows_weight_dtype(name, var) {
        return DType::F32;
    }
    match options.weight_dtype {
        Some(dtype) => dtype,
        None => match resolve(name, checkpoint).and_then(|found| checkpoint.stored_dtype(&found)) {
            Some(stored @ (DType::BF16 | DType::F16)) => stored,
            // Experts assembled from per-expert tensors take the dtype of their first part.
            None => super::experts_load::stored_dtype(name, checkpoint).unwrap_or(DType::F32),
            Some(_) => DType::F32,
        },
    }
}

/// Loads every parameter of `model` from `checkpoint`. With `quantize` (Q8_0 or Q4_0, `--quantize`),
/// each matrix a loader may pack is encoded into its slot right after it is read (`pack`), so
/// the peak memory is the packed model plus one tensor, never the whole checkpoint at its own
/// width; experts released as MXFP4 keep their blocks.
pub fn load_weights(
    model: &CausalLm,
    config: &ModelConfig,
    checkpoint: &Checkpoint,
    options: &LoadOptions,
    quantize: Option<GgmlType>,
) -> Result<()> {
    let path = checkpoint.describe();
    let params = model.named_parameters();
    let mut packable = HashSet::new();
    model.visit_packed("", &mut |name, _| {
        packable.insert(name.to_string());
    });
    let mut loader = Loader {
        checkpoint,
        options,
        used: HashSet::new(),
        interleaved: super::save::expert_storage(config) == ExpertStorage::FusedInterleaved,
        keep_fp8: options.weight_dtype.is_none() && quantize.is_none(),
        packable,
    };
    let progress = indicatif::ProgressBar::new(params.len() as u64);
    if checkpoint.data_bytes() < (256 << 20) {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress.set_message("loading weights");
    let mut done: HashSet<String> = HashSet::new();
    if let Some(ty) = quantize {
        super::pack::check_type(ty)?;
        let by_name: HashMap<&str, &autograd::Var> = params.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut failure = None;
        model.visit_packed("", &mut |name, slot| {
            let Some(&var) = by_name.get(name) else { return };
            if failure.is_some() {
                return;
            }
            progress.inc(1);
            if let Some(parts) = super::experts_load::per_expert_names(name, var, checkpoint) {
                // Stored one tensor per expert: encoded expert by expert, never stacked.
                match loader.pack_experts(name, var, &parts, ty, slot) {
                    Ok(true) => {
                        done.insert(name.to_string());
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        failure = Some(e);
                        return;
                    }
                }
            }
            let packed = loader.load(name, var).and_then(|blocks| {
                match blocks {
                    Some(blocks) => blocks.put(slot),
                    None => {
                        super::pack::pack(var, ty, &options.device, slot)
                            .map_err(|e| Error::input(format!("--quantize {ty}: {name}: {e}")))?;
                    }
                }
                Ok(())
            });
            match packed {
                Ok(()) => {
                    done.insert(name.to_string());
                }
                Err(e) => failure = Some(e),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
    }
    // Experts a release ships as MXFP4 stay MXFP4 as stored (`weight_dtype` None), as a GGUF
    // file's do, and FP8 matrices stay FP8 (as FP8_E4M3 blocks); their slots are filled once
    // every parameter is read.
    let mut packed: HashMap<String, Blocks> = HashMap::new();
    for (name, var) in params.iter().filter(|(n, _)| !done.contains(n)) {
        progress.inc(1);
        if let Some(blocks) = loader.load(name, var)? {
            packed.insert(name.clone(), blocks);
        }
    }
    progress.finish_and_clear();
    model.visit_packed("", &mut |name, slot| {
        if let Some(blocks) = packed.remove(name) {
            blocks.put(slot);
        }
    });
    let used = loader.used;
    let unexpected: Vec<String> = checkpoint
        .names()
        .into_iter()
        .filter(|n| !used.contains(n) && !ignorable(n, config))
        // An FP8 weight's block scales are read with it.
        .filter(|n| !n.strip_suffix("_scale_inv").is_some_and(|weight| used.contains(weight)))
        // A tied model may still carry a copy of the head.
        .filter(|n| !(config.tie_word_embeddings && n.ends_with("lm_head.weight")))
        .collect();
    if let Some(first) = unexpected.first() {
        return Err(Error::format(
            &path,
            format!(
                "unexpected tensor {first} (and {} more) that the {} config does not account for",
                unexpected.len() - 1,
                config.model_type
            ),
        ));
    }
    Ok(())
}

/// What loading one parameter needs, and the checkpoint tensors read so far.
struct Loader<'a> {
    checkpoint: &'a Checkpoint,
    options: &'a LoadOptions,
    used: HashSet<String>,
    /// gpt-oss's fused experts alternate gate and up (`ExpertStorage::FusedInterleaved`).
    interleaved: bool,
    /// FP8 matrices are kept as FP8_E4M3 blocks (the others stored as FP8 load as f32): the
    /// weights keep their stored dtype (`weight_dtype` None) and no `--quantize` type replaces
    /// them.
    keep_fp8: bool,
    /// The parameters a `PackedSlot` can hold (`Module::visit_packed`).
    packable: HashSet<String>,
}

impl Loader<'_> {
    /// Encodes the stacked expert weight `name` as `ty` from its per-expert tensors `parts`, one
    /// expert at a time, into `slot` (leaving `var` a placeholder); false when its rows are not
    /// whole blocks (then it is loaded as it is).
    fn pack_experts(
        &mut self,
        name: &str,
        var: &autograd::Var,
        parts: &[String],
        ty: GgmlType,
        slot: &nn::PackedSlot,
    ) -> Result<bool> {
        let &[experts, rows, cols] = &var.dims()[..] else { return Ok(false) };
        if cols == 0 || !cols.is_multiple_of(ty.block_size()) {
            return Ok(false);
        }
        let (checkpoint, device) = (self.checkpoint, &self.options.device);
        let dtype = parameter_dtype(name, var, checkpoint, self.options);
        let at = |e: tensor::Error| Error::input(format!("--quantize {ty}: {name}: {e}"));
        let mut bytes = Vec::with_capacity(experts * rows * (cols / ty.block_size()) * ty.type_size());
        for part in parts {
            self.used.insert(part.clone());
            let t = checkpoint.load(part, Some(dtype), &Device::cpu())?;
            if t.dims() != [rows, cols] {
                return Err(Error::format(
                    &checkpoint.describe(),
                    format!("tensor {part} has shape {:?}, but the config implies [{rows}, {cols}]", t.dims()),
                ));
            }
            super::pack::encode(&t, ty, &mut bytes).map_err(at)?;
        }
        Blocks::new(ty, Some(experts), rows, cols, bytes, device).map_err(at)?.put(slot);
        var.replace_value(placeholder(var, device)?)?;
        Ok(true)
    }

    /// The FP8 matrix `name` (or stack of experts, stored one FP8 tensor per expert) as
    /// FP8_E4M3 blocks, or None when it is not stored as FP8 whose tiles the blocks carry.
    fn fp8_blocks(&mut self, name: &str, var: &autograd::Var) -> Result<Option<Blocks>> {
        let checkpoint = self.checkpoint;
        let (stack, rows, cols, parts) = match var.dims()[..] {
            [rows, cols] => match resolve(name, checkpoint) {
                Some(found) => (None, rows, cols, vec![found]),
                None => return Ok(None),
            },
            [experts, rows, cols] => match super::experts_load::per_expert_names(name, var, checkpoint) {
                Some(parts) => (Some(experts), rows, cols, parts),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let ty = GgmlType::FP8_E4M3;
        let matrix = rows * cols / 32 * ty.type_size();
        let mut bytes = Vec::with_capacity(parts.len() * matrix);
        for part in &parts {
            // A misshapen tensor is left to the plain load, which names it.
            if checkpoint.meta(part).is_none_or(|m| m.shape != [rows, cols]) {
                return Ok(None);
            }
            match checkpoint.fp8_blocks(part)? {
                Some(b) => bytes.extend(b),
                None => return Ok(None),
            }
        }
        self.used.extend(parts);
        let at = |e: tensor::Error| Error::format(&checkpoint.describe(), format!("{name}: {e}"));
        let blocks = Blocks::new(ty, stack, rows, cols, bytes, &self.options.device).map_err(at)?;
        var.replace_value(placeholder(var, &self.options.device)?)?;
        Ok(Some(blocks))
    }

    /// Reads parameter `name` into `var`; or, for experts released as MXFP4 and matrices
    /// released as FP8 and kept so (`weight_dtype` None), leaves a placeholder and returns their
    /// blocks for the slot.
    fn load(&mut self, name: &str, var: &autograd::Var) -> Result<Option<Blocks>> {
        let (checkpoint, options) = (self.checkpoint, self.options);
        let path = checkpoint.describe();
        let dtype = parameter_dtype(name, var, checkpoint, options);
        if self.keep_fp8
            && self.packable.contains(name)
            && let Some(blocks) = self.fp8_blocks(name, var)?
        {
            return Ok(Some(blocks));
        }
        // The FP8 matrices not kept as blocks (MLA's `kv_b_proj`, whose weight is split per
        // head; widths that are not whole blocks) are dequantized to f32, so that the model
        // computes with the release's exact weights throughout, as the blocks do.
        let dtype = match resolve(name, checkpoint) {
            Some(found) if self.keep_fp8 && checkpoint.is_fp8(&found) => DType::F32,
            _ => dtype,
        };
        if let Some(ggml) = super::experts_load::mxfp4_blocks(name, var, checkpoint, &mut self.used, self.interleaved)?
        {
            let &[experts, rows, cols] = &var.dims()[..] else { unreachable!("mxfp4_blocks checked the stack") };
            let at = |e: tensor::Error| Error::format(&path, format!("{name}: {e}"));
            if options.weight_dtype.is_none() {
                let blocks =
                    Blocks::new(GgmlType::MXFP4, Some(experts), rows, cols, ggml, &options.device).map_err(at)?;
                var.replace_value(placeholder(var, &options.device)?)?;
                return Ok(Some(blocks));
            }
            let mut values = vec![0.0f32; ggml.len() / 17 * 32];
            tensor::quant::dequantize(GgmlType::MXFP4, &ggml, &mut values).map_err(at)?;
            let tensor = Tensor::from_vec(values, var.dims().to_vec(), &Device::cpu())?;
            var.replace_value(tensor.to_dtype(dtype)?.to(&options.device)?)?;
            return Ok(None);
        }
        let tensor = load_parameter(name, var, checkpoint, &mut self.used, dtype, &options.device, self.interleaved)?;
        if tensor.dims() != &var.dims()[..] {
            return Err(Error::format(
                &path,
                format!("tensor {name} has shape {:?}, but the config implies {:?}", tensor.dims(), var.dims()),
            ));
        }
        var.replace_value(tensor)?;
        Ok(None)
    }
}

/// One parameter's value from the checkpoint: by name, or assembled from the per-expert or
/// fused tensors a mixture of experts is stored as.
fn load_parameter(
    name: &str,
    var: &Var,
    checkpoint: &Checkpoint,
    used: &mut HashSet<String>,
    dtype: DType,
    device: &Device,
    interleaved_experts: bool,
) -> Result<Tensor> {
    if let Some(found) = resolve(name, checkpoint) {
        used.insert(found.clone());
        return checkpoint.load(&found, Some(dtype), device);
    }
    if let Some(t) = super::experts_load::assemble(name, var, checkpoint, used, dtype, device, interleaved_experts)? {
        return Ok(t);
    }
    Err(Error::format(&checkpoint.describe(), format!("missing tensor {name}")))
}
