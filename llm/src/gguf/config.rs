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

/// The Hugging Face config JSON the metadata describes.
pub fn hf_config(file: &GgufFile) -> Result<Map<String, Json>> {
    let arch = architecture(file)?;
    let model_type = model_type_of(arch).ok_or_else(|| {
        Error::format(
            &file.path,
            format!(
                "general.architecture is {arch:?}; the architectures read from GGUF are {}",
                registry::gguf_names().join(", ")
            ),
        )
    })?;
    let key = |k: &str| format!("{arch}.{k}");
    let uint = |k: &str| -> Result<Option<u64>> {
        match file.get(&key(k)) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Error::format(
                    &file.path,
                    format!("metadata {} is {}, expected a non-negative integer", key(k), v.summary()),
                )
            }),
        }
    };
    let need = |k: &str| -> Result<u64> {
        uint(k)?.ok_or_else(|| Error::format(&file.path, format!("metadata {} is missing", key(k))))
    };
    let float = |k: &str| -> Result<Option<f64>> {
        match file.get(&key(k)) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                Error::format(&file.path, format!("metadata {} is {}, expected a number", key(k), v.summary()))
            }),
        }
    };
    let hidden = need("embedding_length")?;
    let heads = need("attention.head_count")?;
    let vocab = match uint("vocab_size")? {
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
    c.insert("num_hidden_layers".into(), json!(need("block_count")?));
    c.insert("intermediate_size".into(), json!(need("feed_forward_length")?));
    c.insert("num_attention_heads".into(), json!(heads));
    c.insert("num_key_value_heads".into(), json!(uint("attention.head_count_kv")?.unwrap_or(heads)));
    if let Some(d) = uint("attention.key_length")? {
        c.insert("head_dim".into(), json!(d));
    }
    c.insert("rms_norm_eps".into(), json!(float("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-6)));
    c.insert("max_position_embeddings".into(), json!(need("context_length")?));
    let mut rope = Map::new();
    rope.insert("rope_theta".into(), json!(float("rope.freq_base")?.unwrap_or(10_000.0)));
    match file.get(&key("rope.scaling.type")).and_then(Value::as_str) {
        None | Some("none") => {
            rope.insert("rope_type".into(), json!("default"));
        }
        Some(kind @ ("linear" | "yarn")) => {
            rope.insert("rope_type".into(), json!(kind));
            rope.insert("factor".into(), json!(float("rope.scaling.factor")?.unwrap_or(1.0)));
            if let Some(n) = uint("rope.scaling.original_context_length")? {
                rope.insert("original_max_position_embeddings".into(), json!(n));
            }
        }
        Some(other) => {
            return Err(Error::format(
                &file.path,
                format!("metadata {} is {other:?}; linear and yarn are read", key("rope.scaling.type")),
            ));
        }
    }
    c.insert("rope_parameters".into(), Json::Object(rope));
    if file.tensor("rope_freqs.weight").is_some() {
        return Err(Error::format(
            &file.path,
            "tensor rope_freqs.weight (Llama 3-style per-frequency RoPE factors) is not supported yet",
        ));
    }
    c.insert("tie_word_embeddings".into(), json!(file.tensor("output.weight").is_none()));
    c.insert("attention_bias".into(), json!(file.tensor("blk.0.attn_q.bias").is_some()));
    c.insert("hidden_act".into(), json!("silu"));
    // llama.cpp's qwen3, llama and qwen3moe attend to every earlier position.
    c.insert("sliding_window".into(), Json::Null);
    c.insert("use_sliding_window".into(), json!(false));
    let token = |k: &str| file.get(&format!("tokenizer.ggml.{k}")).and_then(Value::as_u64);
    c.insert("bos_token_id".into(), json!(token("bos_token_id")));
    c.insert("eos_token_id".into(), json!(token("eos_token_id")));
    if let Some(step) = registry::gguf(arch).and_then(|g| g.nope_step) {
        c.insert("no_rope_layer_interval".into(), json!(step));
    }
    if arch == "qwen3moe" {
        c.insert("num_experts".into(), json!(need("expert_count")?));
        c.insert("num_experts_per_tok".into(), json!(need("expert_used_count")?));
        c.insert("moe_intermediate_size".into(), json!(need("expert_feed_forward_length")?));
        // llama.cpp always renormalises the chosen experts' weights for qwen3moe.
        let norm = file.get(&key("expert_weights_norm")).and_then(Value::as_bool).unwrap_or(true);
        c.insert("norm_topk_prob".into(), json!(norm));
        c.insert("decoder_sparse_step".into(), json!(1));
        c.insert("mlp_only_layers".into(), json!([]));
    }
    Ok(c)
}

/// The validated config of a GGUF file.
pub fn model_config(file: &GgufFile) -> Result<ModelConfig> {
    let map = hf_config(file)?;
    ModelConfig::from_json_str(&Json::Object(map).to_string(), &file.path.display().to_string())
}
