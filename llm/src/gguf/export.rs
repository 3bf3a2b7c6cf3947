//! Writing a loaded model as a GGUF file llama.cpp reads: the metadata keys and tensor names its
//! converter (`convert_hf_to_gguf.py`) writes for the architecture, q and k rows permuted for
//! `llama`, and matrices encoded in the chosen type. As llama.cpp's quantizer does, norms and
//! other vectors stay F32, as do MoE routers (`ffn_gate_inp`) and matrices whose rows are not
//! whole blocks.

use std::path::Path;

use nn::ModuleExt;
use nn::rope::RopeScaling;
use tensor::quant::{self, GgmlType};

use super::config::arch_of;
use super::load::permute_rows;
use super::names::to_gguf;
use super::value::Value;
use super::writer::GgufWriter;
use crate::config::ModelConfig;
use crate::models::CausalLm;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The file types `llm quantize` writes, with llama.cpp's `general.file_type` (`llama_ftype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    F32,
    F16,
    Q8_0,
    Q4_0,
}

impl FileType {
    pub fn parse(name: &str) -> Option<FileType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "f32" => FileType::F32,
            "f16" => FileType::F16,
            "q8_0" => FileType::Q8_0,
            "q4_0" => FileType::Q4_0,
            _ => return None,
        })
    }

    /// `LLAMA_FTYPE_ALL_F32`, `MOSTLY_F16`, `MOSTLY_Q8_0`, `MOSTLY_Q4_0`.
    fn ftype(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q8_0 => 7,
            FileType::Q4_0 => 2,
        }
    }

    fn matrix_type(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q4_0 => GgmlType::Q4_0,
        }
    }
}

/// The metadata llama.cpp's converter writes for `config`'s architecture.
fn metadata(w: &mut GgufWriter, config: &ModelConfig, arch: &str, name: &str, file_type: FileType) -> Result<()> {
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
    if arch == "llama" {
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
    let arch = arch_of(&config.model_type).ok_or_else(|| {
        Error::input(format!(
            "{} models cannot be written as GGUF yet (qwen3, mistral/llama and qwen3_moe can)",
            config.model_type
        ))
    })?;
    if config.rope.global.scaling != RopeScaling::None || config.rope.local.is_some() {
        return Err(Error::input(format!("RoPE scaling {:?} is not written to GGUF yet", config.rope.global.scaling)));
    }
    let mut w = GgufWriter::new();
    metadata(&mut w, config, arch, name, file_type)?;
    let wrote_tokenizer = match tokenizer {
        Some(t) => super::tokenizer::to_gguf(t, &mut w)?,
        None => false,
    };
    for (hf, var) in model.named_parameters() {
        let gguf = to_gguf(&hf).ok_or_else(|| Error::input(format!("parameter {hf} has no GGUF tensor name")))?;
        let value = var.value().to(&tensor::Device::cpu())?.to_dtype(tensor::DType::F32)?;
        let shape = value.dims().to_vec();
        let mut values: Vec<f32> = value.contiguous()?.to_vec()?;
        let width = if shape.len() >= 2 { shape[shape.len() - 1] } else { 1 };
        if arch == "llama" && (gguf.contains(".attn_q.") || gguf.contains(".attn_k.")) {
            let heads = if gguf.contains(".attn_q.") { config.num_attention_heads } else { config.num_key_value_heads };
            values = permute_rows(&values, heads, width, false)
                .ok_or_else(|| Error::input(format!("{hf}: rows do not split into {heads} heads of pairs")))?;
        }
        let wanted = file_type.matrix_type();
        let ty = if shape.len() < 2 || gguf.contains("ffn_gate_inp") || !width.is_multiple_of(wanted.block_size()) {
            GgmlType::F32
        } else {
            wanted
        };
        let bytes = quant::quantize(ty, &values).map_err(|e| Error::input(format!("{hf}: {e}")))?;
        w.add_tensor(&gguf, &shape, ty, bytes)?;
    }
    w.write(out)?;
    Ok(wrote_tokenizer)
}
