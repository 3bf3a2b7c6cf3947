//! A model config from GGUF metadata. llama.cpp's converter writes a config's hyperparameters
//! under `<arch>.<key>` (`qwen3.embedding_length` for `hidden_size`, ...); this file writes them
//! back as the Hugging Face config they came from and hands that to the project's own config
//! parser, so a GGUF model is validated exactly as its safetensors twin is.

use serde_json::{Map, Value as Json, json};

use super::reader::GgufFile;
use super::value::Value;
use crate::config::ModelConfig;
use crate::models::architecture::Gguf;
use crate::models::registry;
use crate::{Error, Result};

/// The Hugging Face `model_type` of a llama.cpp architecture read here (the registry's `gguf`
/// names: `llama` is the Llama / Mistral decoder, which this project builds as `mistral`).
pub fn model_type_of(arch: &str) -> Option<&'static str> {
    registry::by_gguf(arch).map(|a| a.text_model_type())
}

/// How a Hugging Face `model_type` is written as GGUF (llama.cpp's architecture and names).
pub fn gguf_of(model_type: &str) -> Option<Gguf> {
    registry::by_model_type(model_type).and_then(|(a, _)| a.gguf)
}

/// `general.architecture`.
pub fn architecture(file: &GgufFile) -> Result<&str> {
    file.get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::format(&file.path, "metadata general.architecture is missing or not a string"))
}

/// The metadata of one architecture's keys (`<arch>.<key>`) in a file, read with messages that
/// name the file and the key.
pub struct Metadata<'a> {
    pub file: &'a GgufFile,
    /// `general.architecture`, the keys' prefix.
    pub arch: &'a str,
}

impl Metadata<'_> {
    /// The full name of `<arch>.<k>`.
    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    /// An error about `<arch>.<k>` naming the file.
    pub fn error(&self, k: &str, what: impl std::fmt::Display) -> Error {
        Error::format(&self.file.path, format!("metadata {} {what}", self.key(k)))
    }

    /// `<arch>.<k>` as a non-negative integer, if present.
    pub fn uint(&self, k: &str) -> Result<Option<u64>> {
        match self.file.get(&self.key(k)) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.error(k, format!("is {}, expected a non-negative integer", v.summary()))),
        }
    }

    /// `<arch>.<k>` as a non-negative integer, which must be present.
    pub fn need(&self, k: &str) -> Result<u64> {
        self.uint(k)?.ok_or_else(|| self.error(k, "is missing"))
    }

    /// `<arch>.<k>` as a number, if present.
    pub fn float(&self, k: &str) -> Result<Option<f64>> {
        match self.file.get(&self.key(k)) {
            None => Ok(None),
            Some(v) => {
                v.as_f64().map(Some).ok_or_else(|| self.error(k, format!("is {}, expected a number", v.summary())))
            }
        }
    }

    /// `<arch>.<k>` as a boolean, if present.
    pub fn bool(&self, k: &str) -> Result<Option<bool>> {
        match self.file.get(&self.key(k)) {
            None => Ok(None),
            Some(v) => {
                v.as_bool().map(Some).ok_or_else(|| self.error(k, format!("is {}, expected a boolean", v.summary())))
            }
        }
    }

    /// `<arch>.<k>` as a string, if present.
    pub fn str(&self, k: &str) -> Result<Option<&str>> {
        match self.file.get(&self.key(k)) {
            None => Ok(None),
            Some(v) => {
                v.as_str().map(Some).ok_or_else(|| self.error(k, format!("is {}, expected a string", v.summary())))
            }
        }
    }
}

/// The Hugging Face config JSON the metadata describes: the keys every architecture has here,
/// then the architecture's own ([`Gguf::read`]).
pub fn hf_config(file: &GgufFile) -> Result<Map<String, Json>> {
    let arch = architecture(file)?;
    let found = match registry::by_gguf(arch) {
        Some(a) => a,
        None => {
            return Err(Error::format(
                &file.path,
                format!(
                    "general.architecture is {arch:?}; the architectures read from GGUF are {}",
                    registry::gguf_names().join(", ")
                ),
            ));
        }
    };
    let (model_type, described) = (found.text_model_type(), found.gguf.expect("by_gguf finds a Gguf"));
    let meta = Metadata { file, arch };
    let hidden = meta.need("embedding_length")?;
    let heads = meta.need("attention.head_count")?;
    let vocab = match meta.uint("vocab_size")? {
        Some(v) => v,
        None => match file.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
            Some(tokens) => tokens.len() as u64,
            None => file.tensor("token_embd.weight").and_then(|t| t.dims.get(1).copied()).ok_or_else(|| {
                Error::format(
                    &file.path,
                    "no vocabulary size: no vocab_size, tokenizer.ggml.tokens or token_embd.weight",
                )
            })?,
        },
    };
    let mut c = Map::new();
    c.insert("model_type".into(), json!(model_type));
    c.insert("vocab_size".into(), json!(vocab));
    c.insert("hidden_size".into(), json!(hidden));
    c.insert("num_hidden_layers".into(), json!(meta.need("block_count")?));
    c.insert("intermediate_size".into(), json!(meta.need("feed_forward_length")?));
    c.insert("num_attention_heads".into(), json!(heads));
    c.insert("num_key_value_heads".into(), json!(meta.uint("attention.head_count_kv")?.unwrap_or(heads)));
    if let Some(d) = meta.uint("attention.key_length")? {
        c.insert("head_dim".into(), json!(d));
    }
    c.insert("rms_norm_eps".into(), json!(meta.float("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-6)));
    c.insert("max_position_embeddings".into(), json!(meta.need("context_length")?));
    let mut rope = Map::new();
    rope.insert("rope_theta".into(), json!(meta.float("rope.freq_base")?.unwrap_or(10_000.0)));
    match meta.str("rope.scaling.type")? {
        None | Some("none") => {
            rope.insert("rope_type".into(), json!("default"));
        }
        Some(kind @ ("linear" | "yarn")) => {
            rope.insert("rope_type".into(), json!(kind));
            rope.insert("factor".into(), json!(meta.float("rope.scaling.factor")?.unwrap_or(1.0)));
            if let Some(n) = meta.uint("rope.scaling.original_context_length")? {
                rope.insert("original_max_position_embeddings".into(), json!(n));
            }
            if kind == "yarn" {
                // llama.cpp's defaults (and HF's), and its rounded correction range.
                rope.insert("beta_fast".into(), json!(meta.float("rope.scaling.yarn_beta_fast")?.unwrap_or(32.0)));
                rope.insert("beta_slow".into(), json!(meta.float("rope.scaling.yarn_beta_slow")?.unwrap_or(1.0)));
                rope.insert("truncate".into(), json!(true));
            }
        }
        Some(other) => {
            return Err(meta.error("rope.scaling.type", format!("is {other:?}; linear and yarn are read")));
        }
    }
    if file.tensor("rope_freqs.weight").is_some() {
        // Llama 3-style scaling, which the converter writes as per-frequency divisors.
        if rope.get("rope_type").and_then(Json::as_str) != Some("default") {
            return Err(Error::format(&file.path, "both rope.scaling.type and tensor rope_freqs.weight are given"));
        }
        let theta = rope["rope_theta"].as_f64().unwrap_or(10_000.0);
        let head_dim = meta.uint("attention.key_length")?.unwrap_or(hidden / heads.max(1));
        let dim = meta.uint("rope.dimension_count")?.unwrap_or(head_dim) as usize;
        let (divisors, _) = file.dequantize("rope_freqs.weight")?;
        let (factor, low, high, original) = super::rope_freqs::fit(theta, dim, &divisors).ok_or_else(|| {
            Error::format(
                &file.path,
                format!("tensor rope_freqs.weight is not a Llama 3 RoPE schedule over {dim} dims of base {theta}"),
            )
        })?;
        rope.insert("rope_type".into(), json!("llama3"));
        rope.insert("factor".into(), json!(factor));
        rope.insert("low_freq_factor".into(), json!(low));
        rope.insert("high_freq_factor".into(), json!(high));
        rope.insert("original_max_position_embeddings".into(), json!(original));
    }
    c.insert("rope_parameters".into(), Json::Object(rope));
    c.insert("tie_word_embeddings".into(), json!(file.tensor("output.weight").is_none()));
    c.insert("attention_bias".into(), json!(file.tensor("blk.0.attn_q.bias").is_some()));
    // llama.cpp fixes each architecture's activation in its graph (no metadata key); it is the
    // one of the transformers class (SwiGLU's silu, Gemma's tanh-GELU).
    c.insert("hidden_act".into(), json!(found.defaults.hidden_act));
    // llama.cpp's qwen3, llama and qwen3moe attend to every earlier position (the
    // architectures with windows set them in their `read`).
    c.insert("sliding_window".into(), Json::Null);
    c.insert("use_sliding_window".into(), json!(false));
    let token = |k: &str| file.get(&format!("tokenizer.ggml.{k}")).and_then(Value::as_u64);
    c.insert("bos_token_id".into(), json!(token("bos_token_id")));
    c.insert("eos_token_id".into(), json!(token("eos_token_id")));
    if let Some(step) = described.nope_step {
        c.insert("no_rope_layer_interval".into(), json!(step));
    }
    (described.read)(&meta, &mut c)?;
    Ok(c)
}

/// A [`Gguf::read`] for architectures with no keys of their own.
pub fn no_keys(_: &Metadata, _: &mut Map<String, Json>) -> Result<()> {
    Ok(())
}

/// The validated config of a GGUF file.
pub fn model_config(file: &GgufFile) -> Result<ModelConfig> {
    let map = hf_config(file)?;
    ModelConfig::from_json_str(&Json::Object(map).to_string(), &file.path.display().to_string())
}
