//! Writing a loaded model as a GGUF file llama.cpp reads: the metadata keys and tensor names its
//! converter (`convert_hf_to_gguf.py`) writes for the architecture, q and k rows permuted for
//! `llama`, and matrices encoded in the chosen type. As llama.cpp's quantizer does, norms and
//! other vectors stay F32, as do MoE routers (`ffn_gate_inp`); matrices whose rows are not whole
//! blocks stay F32 (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) or take llama.cpp's fallbacks (Q4_K_M, below).
//!
//! Q4_K_M is llama.cpp's mix (`llama_tensor_get_type` for `LLAMA_FTYPE_MOSTLY_Q4_K_M`): Q4_K
//! everywhere except Q6_K for the output head (the embedding table when the head is tied to it),
//! and for `attn_v` and every `ffn_down*` of the layers where [`more_bits`] holds (the first and
//! last eighth of the layers and every third one between); with 8 experts `attn_v` and `attn_k`
//! take Q8_0 and `attn_output` Q5_K. A k-quant matrix whose rows are not whole 256-weight blocks
//! (Gemma 3 1B's 1152 columns) takes llama.cpp's fallback: Q5_0 for Q4_K, Q5_1 for Q5_K, Q8_0 for
//! Q6_K; F32 where even 32-weight blocks do not fit.
//!
//! gpt-oss's routed experts are MXFP4 in every quantized file (Q8_0, Q4_0, Q4_K_M), as llama.cpp's
//! converter writes them from the MXFP4 release.

use std::path::Path;

use nn::ModuleExt;
use nn::rope::RopeScaling;
use tensor::quant::{self, GgmlType};

use super::config::gguf_of;
use super::load::permute_rows;
use super::names::to_gguf;
use super::value::Value;
use super::writer::GgufWriter;
use crate::config::{LayerAttention, ModelConfig};
use crate::models::CausalLm;
use crate::models::architecture::Gguf;
use crate::models::recipe::NormWeights;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The file types `llm quantize` writes, with llama.cpp's `general.file_type` (`llama_ftype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4KM,
}

impl FileType {
    pub fn parse(name: &str) -> Option<FileType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "f32" => FileType::F32,
            "f16" => FileType::F16,
            "bf16" => FileType::BF16,
            "q8_0" => FileType::Q8_0,
            "q4_0" => FileType::Q4_0,
            "q4_1" => FileType::Q4_1,
            "q5_0" => FileType::Q5_0,
            "q5_1" => FileType::Q5_1,
            "q4_k_m" => FileType::Q4KM,
            _ => return None,
        })
    }

    /// `LLAMA_FTYPE_ALL_F32`, `MOSTLY_F16`, `MOSTLY_BF16`, `MOSTLY_Q8_0`, `MOSTLY_Q4_0`,
    /// `MOSTLY_Q4_1`, `MOSTLY_Q5_0`, `MOSTLY_Q5_1`, `MOSTLY_Q4_K_M`.
    fn ftype(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::BF16 => 32,
            FileType::Q8_0 => 7,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q5_0 => 8,
            FileType::Q5_1 => 9,
            FileType::Q4KM => 15,
        }
    }

    /// The type of a matrix named `gguf` (of `width` columns) in a file of this type; see the
    /// module doc. `tied` says whether the model has no separate `output.weight`.
    fn matrix_type(self, gguf: &str, width: usize, layers: usize, experts: usize, tied: bool) -> GgmlType {
        let wanted = match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::BF16 => GgmlType::BF16,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q4_1 => GgmlType::Q4_1,
            FileType::Q5_0 => GgmlType::Q5_0,
            FileType::Q5_1 => GgmlType::Q5_1,
            FileType::Q4KM => {
                let layer = gguf.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|n| n.parse().ok());
                let more = layer.is_some_and(|i| more_bits(i, layers));
                if gguf == "output.weight" || (tied && gguf == "token_embd.weight") {
                    GgmlType::Q6_K
                } else if gguf.contains(".attn_v.") {
                    if experts == 8 {
                        GgmlType::Q8_0
                    } else if more {
                        GgmlType::Q6_K
                    } else {
                        GgmlType::Q4_K
                    }
                } else if gguf.contains(".attn_k.") && experts == 8 {
                    GgmlType::Q8_0
                } else if gguf.contains(".attn_output.") && experts == 8 {
                    GgmlType::Q5_K
                } else if gguf.contains(".ffn_down") && more {
                    GgmlType::Q6_K
                } else {
                    GgmlType::Q4_K
                }
            }
        };
        if width.is_multiple_of(wanted.block_size()) {
            return wanted;
        }
        // llama.cpp's fallbacks for a k-quant whose rows are not whole 256-weight blocks
        // (`llama_tensor_get_type`): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, blocks of 32.
        let fallback = match wanted {
            GgmlType::Q4_K => GgmlType::Q5_0,
            GgmlType::Q5_K => GgmlType::Q5_1,
            GgmlType::Q6_K => GgmlType::Q8_0,
            _ => GgmlType::F32,
        };
        if width.is_multiple_of(fallback.block_size()) { fallback } else { GgmlType::F32 }
    }
}

/// llama.cpp's `use_more_bits`: layer `i` of `n` gets more bits in Q4_K_M when it is in the first
/// or last eighth, or every third layer from the first eighth on.
fn more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as i64 - (n / 8) as i64).rem_euclid(3) == 2
}

/// The metadata llama.cpp's converter writes for `config`'s architecture.
fn metadata(w: &mut GgufWriter, config: &ModelConfig, gguf: &Gguf, name: &str, file_type: FileType) -> Result<()> {
    let arch = gguf.arch;
    let u32v = |n: usize| {
        u32::try_from(n).map(Value::U32).map_err(|_| Error::Config(format!("{n} does not fit GGUF's u32 field")))
    };
    w.set("general.architecture", Value::String(arch.into()));
    w.set("general.name", Value::String(name.into()));
    w.set("general.file_type", Value::U32(file_type.ftype()));
    w.set("general.quantization_version", Value::U32(2));
    let key = |k: &str| format!("{arch}.{k}");
    w.set(&key("vocab_size"), u32v(config.vocab_size)?);
    w.set(&key("context_length"), u32v(config.max_position_embeddings)?);
    w.set(&key("embedding_length"), u32v(config.hidden_size)?);
    w.set(&key("block_count"), u32v(config.num_hidden_layers)?);
    w.set(&key("feed_forward_length"), u32v(config.dense_intermediate_size)?);
    w.set(&key("attention.head_count"), u32v(config.num_attention_heads)?);
    w.set(&key("attention.head_count_kv"), u32v(config.num_key_value_heads)?);
    w.set(&key("attention.key_length"), u32v(config.head_dim)?);
    w.set(&key("attention.value_length"), u32v(config.head_dim)?);
    w.set(&key("attention.layer_norm_rms_epsilon"), Value::F32(config.rms_norm_eps as f32));
    w.set(&key("rope.freq_base"), Value::F32(config.rope.global.theta as f32));
    match config.rope.global.scaling {
        RopeScaling::None => {}
        // `TextModel.set_gguf_parameters` (and Gemma 3's converter, for its global layers).
        RopeScaling::Linear { factor } => {
            w.set(&key("rope.scaling.type"), Value::String("linear".into()));
            w.set(&key("rope.scaling.factor"), Value::F32(factor as f32));
        }
        // `LlamaModel.generate_extra_tensors`: the tensor `rope_freqs.weight`, written below.
        RopeScaling::Llama3 { .. } => {}
        // `TextModel.set_gguf_parameters` for `rope_type: yarn`. llama.cpp always rounds the
        // correction range outwards (`ggml_rope_yarn_corr_dims`: HF's `truncate: true`), and
        // scales cos and sin by `0.1 ln(factor) + 1` (HF's attention factor with `mscale` 1 and
        // no `mscale_all_dim`); an architecture that takes `mscale_all_dim` writes
        // `rope.scaling.yarn_log_multiplier` in its hook (checked in `write_gguf_with_template`).
        RopeScaling::Yarn { factor, beta_fast, beta_slow, original_max_position_embeddings, truncate, .. } => {
            if !truncate {
                return Err(Error::input(format!(
                    "{}: YaRN with truncate: false, but llama.cpp rounds the correction range (truncate: true), \
                     so GGUF cannot hold it",
                    config.model_type
                )));
            }
            w.set(&key("rope.scaling.type"), Value::String("yarn".into()));
            w.set(&key("rope.scaling.factor"), Value::F32(factor as f32));
            w.set(&key("rope.scaling.original_context_length"), u32v(original_max_position_embeddings as usize)?);
            w.set(&key("rope.scaling.yarn_beta_fast"), Value::F32(beta_fast as f32));
            w.set(&key("rope.scaling.yarn_beta_slow"), Value::F32(beta_slow as f32));
        }
    }
    if let Some(window) = config.sliding_window
        && gguf.swa_pattern.is_some()
        && config.layers.iter().any(|l| l.attention == LayerAttention::Sliding)
    {
        w.set(&key("attention.sliding_window"), u32v(window)?);
    }
    if gguf.permuted_qk {
        // (Llama's converter and those built on it write the rotated width too.)
        w.set(&key("rope.dimension_count"), u32v(config.head_dim)?);
    }
    if let Some(moe) = &config.moe {
        w.set(&key("expert_count"), u32v(moe.num_experts)?);
        w.set(&key("expert_used_count"), u32v(moe.top_k)?);
        w.set(&key("expert_feed_forward_length"), u32v(moe.expert_intermediate_size)?);
    }
    if let Some(bos) = config.bos_token_id {
        w.set("tokenizer.ggml.bos_token_id", Value::U32(bos));
    }
    if let Some(&eos) = config.eos_token_ids.first() {
        w.set("tokenizer.ggml.eos_token_id", Value::U32(eos));
    }
    Ok(())
}

/// A [`Gguf::write`] for architectures with no keys of their own.
pub fn no_keys(_: &ModelConfig, _: &mut GgufWriter) -> Result<()> {
    Ok(())
}

/// Whether the model's RMSNorms multiply by `(1 + w)` (Gemma): llama.cpp's norms multiply by the
/// weight alone, so the converter stores `w + 1` in every tensor whose name ends in
/// `norm.weight` (`Gemma3Model.norm_shift`), which the reader takes off again.
pub fn unit_offset_norm(config: &ModelConfig) -> bool {
    config.recipe().norm_weights == NormWeights::UnitOffset
}

/// Writes `model` (with `config`, and `tokenizer` when given) to `out` as a GGUF file of
/// `file_type`. Returns whether the tokenizer was written (only byte-level BPE ones are).
pub fn write_gguf(
    model: &CausalLm,
    config: &ModelConfig,
    tokenizer: Option<&Tokenizer>,
    name: &str,
    file_type: FileType,
    out: &Path,
) -> Result<bool> {
    write_gguf_with_template(model, config, tokenizer, None, name, file_type, out)
}

/// [`write_gguf`], also writing `chat_template` (Jinja source) as `tokenizer.chat_template`, the
/// key llama.cpp reads it from.
pub fn write_gguf_with_template(
    model: &CausalLm,
    config: &ModelConfig,
    tokenizer: Option<&Tokenizer>,
    chat_template: Option<&str>,
    name: &str,
    file_type: FileType,
    out: &Path,
) -> Result<bool> {
    let described = gguf_of(&config.model_type).ok_or_else(|| {
        Error::input(format!(
            "{} models cannot be written as GGUF yet (llama.cpp's {} can)",
            config.model_type,
            crate::models::registry::gguf_names().join(", ")
        ))
    })?;
    let (arch, nope_step) = (described.arch, described.nope_step);
    if config.rope.local.is_some() && described.swa_pattern.is_none() {
        return Err(Error::input(format!("{arch}: a second RoPE schedule for local layers is not written to GGUF")));
    }
    if config.attn_logit_softcapping.is_some() {
        return Err(Error::input(format!("{arch}: llama.cpp's {arch} does not cap attention logits")));
    }
    let rotated = |i: usize| nope_step.is_none_or(|s| !(i + 1).is_multiple_of(s));
    if config.layers.iter().enumerate().any(|(i, l)| l.rope != rotated(i)) {
        return Err(Error::input(format!(
            "{}: its layers without RoPE are not the pattern llama.cpp's {arch} fixes ({}), so GGUF cannot hold it",
            config.model_type,
            nope_step.map_or("none".to_string(), |s| format!("every {s}th layer"))
        )));
    }
    // llama.cpp's fixed window pattern: with windows (sliding or chunked), layer i attends to
    // everything when (i + 1) % n == 0 and through the window otherwise.
    if let Some(n) = described.swa_pattern {
        let windowed = config.layers.iter().map(|l| l.attention).find(|a| *a != LayerAttention::Full);
        let expected = |i: usize| match windowed {
            Some(kind) if !(i + 1).is_multiple_of(n) => kind,
            _ => LayerAttention::Full,
        };
        if config.layers.iter().enumerate().any(|(i, l)| l.attention != expected(i)) {
            return Err(Error::input(format!(
                "{}: its windowed layers are not the pattern llama.cpp's {arch} fixes (every {n}th layer \
                 global, the others windowed), so GGUF cannot hold it",
                config.model_type
            )));
        }
    } else if config.layers.iter().any(|l| l.attention != LayerAttention::Full) {
        return Err(Error::input(format!(
            "{}: llama.cpp's {arch} attends to every earlier position, but this config has windowed or chunked layers",
            config.model_type
        )));
    }
    let mut w = GgufWriter::new();
    metadata(&mut w, config, &described, name, file_type)?;
    (described.write)(config, &mut w)?;
    if config.final_logit_softcapping.is_some() && !w.has(&format!("{arch}.final_logit_softcapping")) {
        return Err(Error::input(format!("{arch}: llama.cpp's {arch} does not cap the final logits")));
    }
    if let RopeScaling::Yarn { mscale, mscale_all_dim, .. } = config.rope.global.scaling
        && (mscale != 1.0 || mscale_all_dim != 0.0)
        && !w.has(&format!("{arch}.rope.scaling.yarn_log_multiplier"))
    {
        return Err(Error::input(format!(
            "{arch}: YaRN with mscale {mscale} and mscale_all_dim {mscale_all_dim}, but llama.cpp's {arch} scales \
             cos and sin by 0.1 ln(factor) + 1 (mscale 1, no mscale_all_dim), so GGUF cannot hold it"
        )));
    }
    let shift_norms = unit_offset_norm(config);
    let wrote_tokenizer = match tokenizer {
        Some(t) => super::tokenizer::to_gguf(t, &mut w)?,
        None => false,
    };
    if let Some(template) = chat_template {
        w.set("tokenizer.chat_template", Value::String(template.to_string()));
    }
    if let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } =
        config.rope.global.scaling
    {
        let schedule = (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings);
        let divisors = super::rope_freqs::factors(config.rope.global.theta, config.head_dim, schedule);
        let bytes = quant::quantize(GgmlType::F32, &divisors).map_err(|e| Error::input(format!("rope_freqs: {e}")))?;
        w.add_tensor("rope_freqs.weight", &[divisors.len()], GgmlType::F32, bytes)?;
    }
    let params = model.named_parameters();
    let tied = !params.iter().any(|(hf, _)| to_gguf(&described, hf).as_deref() == Some("output.weight"));
    let experts = config.moe.as_ref().map_or(0, |m| m.num_experts);
    // gpt-oss's experts are released as MXFP4, and llama.cpp's converter keeps them so in every
    // quantized file; re-encoding MXFP4 values with ggml's quantizer gives them back exactly.
    let mxfp4_experts =
        described.arch == "gpt-oss" && !matches!(file_type, FileType::F32 | FileType::F16 | FileType::BF16);
    let matrix_type = |gguf: &str, shape: &[usize]| {
        let width = if shape.len() >= 2 { shape[shape.len() - 1] } else { 1 };
        // (llama.cpp's quantizer encodes only tensors named `*weight`: biases stay F32.)
        if shape.len() < 2 || gguf.contains("ffn_gate_inp") || gguf.ends_with(".bias") {
            GgmlType::F32
        } else if mxfp4_experts && gguf.contains("_exps.") && width.is_multiple_of(32) {
            GgmlType::MXFP4
        } else {
            file_type.matrix_type(gguf, width, config.num_hidden_layers, experts, tied)
        }
    };
    for (hf, var) in params {
        let value = var.value().to(&tensor::Device::cpu())?.to_dtype(tensor::DType::F32)?;
        let shape = value.dims().to_vec();
        let mut values: Vec<f32> = value.contiguous()?.to_vec()?;
        if let Some(parts) = (described.split)(config, &hf, &shape, &values)? {
            for (gguf, shape, values) in parts {
                let ty = matrix_type(&gguf, &shape);
                let bytes = quant::quantize(ty, &values).map_err(|e| Error::input(format!("{hf} ({gguf}): {e}")))?;
                w.add_tensor(&gguf, &shape, ty, bytes)?;
            }
            continue;
        }
        let gguf =
            to_gguf(&described, &hf).ok_or_else(|| Error::input(format!("parameter {hf} has no GGUF tensor name")))?;
        let width = if shape.len() >= 2 { shape[shape.len() - 1] } else { 1 };
        if shift_norms && gguf.ends_with("norm.weight") {
            values.iter_mut().for_each(|v| *v += 1.0);
        }
        if described.permuted_qk && (gguf.contains(".attn_q.") || gguf.contains(".attn_k.")) {
            let heads = if gguf.contains(".attn_q.") { config.num_attention_heads } else { config.num_key_value_heads };
            values = permute_rows(&values, heads, width, false)
                .ok_or_else(|| Error::input(format!("{hf}: rows do not split into {heads} heads of pairs")))?;
        }
        let ty = matrix_type(&gguf, &shape);
        let bytes = quant::quantize(ty, &values).map_err(|e| Error::input(format!("{hf}: {e}")))?;
        w.add_tensor(&gguf, &shape, ty, bytes)?;
    }
    w.write(out)?;
    Ok(wrote_tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q4_K_M's mix at Gemma 3 1B's widths (1152 columns: not whole 256-weight blocks) takes
    /// llama.cpp's fallbacks, and whole blocks keep the k-quants.
    #[test]
    fn q4_k_m_falls_back_as_llama_cpp_does() {
        let ty = |name: &str, width: usize, experts: usize| FileType::Q4KM.matrix_type(name, width, 26, experts, true);
        assert_eq!(ty("blk.1.attn_q.weight", 1152, 0), GgmlType::Q5_0);
        assert_eq!(ty("blk.1.attn_q.weight", 1024, 0), GgmlType::Q4_K);
        // Layer 0 is in the first eighth: Q6_K, and Q8_0 where its rows are not whole blocks.
        assert_eq!(ty("blk.0.attn_v.weight", 1152, 0), GgmlType::Q8_0);
        assert_eq!(ty("blk.0.ffn_down.weight", 6912, 0), GgmlType::Q6_K);
        assert_eq!(ty("token_embd.weight", 1152, 0), GgmlType::Q8_0);
        assert_eq!(ty("blk.1.attn_output.weight", 1152, 8), GgmlType::Q5_1);
        assert_eq!(ty("blk.1.attn_q.weight", 40, 0), GgmlType::F32);
        // The single-type files keep whole blocks or F32.
        assert_eq!(FileType::Q4_0.matrix_type("blk.1.attn_q.weight", 1152, 26, 0, true), GgmlType::Q4_0);
        assert_eq!(FileType::Q8_0.matrix_type("blk.1.attn_q.weight", 40, 26, 0, true), GgmlType::F32);
    }
}
