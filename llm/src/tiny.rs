//! The project's own model: a small decoder trained here, on two Jane Austen novels
//! (`assets/corpus/`), with the byte-level BPE tokenizer trained on the same text
//! (`assets/tiny/tokenizer.json`). The shipped checkpoint in `assets/tiny/` is the default model
//! of `llm generate`; `llm pretrain` retrains it (or a variant) from scratch.
//!
//! The recipe here is the single description of that model: its sizes ([`TinySizes`]), the
//! `config.json` it is written as for any of the dense families ([`config_json`]), the token
//! stream it learns from ([`corpus_tokens`]) and the training settings ([`TinyTraining`]). The
//! norm-placement and optimizer comparisons in `examples/` train variants of the same recipe.

use std::path::{Path, PathBuf};

use nn::Init;
use serde_json::{Value, json};
use tensor::Device;

use crate::config::{Family, ModelConfig};
use crate::models::{CausalLm, build};
use crate::tokenizer::{ENDOFTEXT, TINY_CORPUS_FILES, Tokenizer};
use crate::train::{PretrainOptions, WarmupCosine};
use crate::{Error, Result};

/// The folder of the crate's assets (corpus, tokenizer, shipped model, font): see
/// [`crate::assets`].
pub fn assets_dir() -> PathBuf {
    crate::assets::assets_dir()
}

/// The shipped model: `config.json`, `model.safetensors`, `tokenizer.json`.
pub fn shipped_model_dir() -> PathBuf {
    assets_dir().join("tiny")
}

/// The sizes of the tiny model. The defaults give about 3 million parameters (5.9 MB in bf16):
/// small enough to train on two CPU cores in an hour, large enough to learn English words,
/// punctuation and the novels' names from 1.15 MB of text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TinySizes {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate_size: usize,
    /// Longest context the model is trained and used for.
    pub context: usize,
}

impl Default for TinySizes {
    fn default() -> TinySizes {
        TinySizes {
            vocab_size: crate::tokenizer::TINY_VOCAB_SIZE,
            hidden_size: 192,
            layers: 6,
            heads: 6,
            kv_heads: 2,
            intermediate_size: 576,
            context: 512,
        }
    }
}

impl TinySizes {
    /// A much smaller model of the same shape, for smoke tests and quick comparisons.
    pub fn small() -> TinySizes {
        TinySizes { hidden_size: 64, layers: 2, heads: 4, kv_heads: 2, intermediate_size: 192, ..TinySizes::default() }
    }
}

/// The Hugging Face `config.json` of a tiny model in `family`: one of the dense families, whose
/// differences are then only those of the family (Qwen3: pre-norm with per-head QK-norm;
/// Mistral: plain pre-norm; OLMo 2: norms after each sub-layer inside the residual, with QK-norm;
/// Gemma 3: sandwich norms, (1 + w) weights, scaled embeddings, GeLU, local and global layers;
/// SmolLM3: Mistral's layer with no positional encoding (NoPE) on every 4th layer). The fields
/// each family adds are its architecture's `tiny`.
pub fn config_json(family: Family, sizes: &TinySizes) -> Result<Value> {
    if sizes.heads == 0 || !sizes.hidden_size.is_multiple_of(sizes.heads) {
        return Err(Error::input(format!("{} heads do not divide hidden size {}", sizes.heads, sizes.hidden_size)));
    }
    let head_dim = sizes.hidden_size / sizes.heads;
    let mut config = json!({
        "vocab_size": sizes.vocab_size,
        "hidden_size": sizes.hidden_size,
        "intermediate_size": sizes.intermediate_size,
        "num_hidden_layers": sizes.layers,
        "num_attention_heads": sizes.heads,
        "num_key_value_heads": sizes.kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": sizes.context,
        "rms_norm_eps": 1e-6,
        "initializer_range": 0.02,
        "attention_bias": false,
        "hidden_act": "silu",
        "bos_token_id": 0,
        "eos_token_id": 0,
        "tie_word_embeddings": true,
        "rope_parameters": { "rope_type": "default", "rope_theta": 10000.0 },
    });
    let arch = family.architecture();
    let extra = arch.tiny.ok_or_else(|| {
        let dense: Vec<&str> = crate::models::registry::tiny_families().map(|a| a.id()).collect();
        Error::input(format!("the tiny model comes in the dense families {}, not {}", dense.join(", "), arch.name()))
    })?(sizes);
    if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
        c.extend(e);
    }
    Ok(config)
}

/// A freshly initialised tiny model of `family` on `device`, with its parsed config.
pub fn fresh_model(family: Family, sizes: &TinySizes, seed: u64, device: &Device) -> Result<(ModelConfig, CausalLm)> {
    fresh_model_from(&config_json(family, sizes)?, seed, device)
}

/// A freshly initialised model of a `config.json` value on `device`: [`config_json`] with a field
/// changed, for the ablations in `examples/` (a switched-off QK-norm, NoPE layers).
pub fn fresh_model_from(config: &Value, seed: u64, device: &Device) -> Result<(ModelConfig, CausalLm)> {
    let config = ModelConfig::from_json_str(&config.to_string(), "tiny config")?;
    let model = build(&config, &mut Init::new(seed, device))?;
    Ok((config, model))
}

/// The corpus as one token stream: `<|endoftext|>` before, between and after the novels, so the
/// model learns where a document starts and generation can begin from nothing but that token.
pub fn corpus_tokens(tokenizer: &Tokenizer, corpus_dir: &Path) -> Result<Vec<u32>> {
    let eot = tokenizer
        .token_id(ENDOFTEXT)
        .ok_or_else(|| Error::Tokenizer(format!("the tokenizer has no {ENDOFTEXT} token")))?;
    let mut tokens = vec![eot];
    for name in TINY_CORPUS_FILES {
        let path = corpus_dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        tokens.extend(tokenizer.encode(&text)?);
        tokens.push(eot);
    }
    Ok(tokens)
}

/// The training settings of the shipped model.
#[derive(Clone, Debug)]
pub struct TinyTraining {
    pub options: PretrainOptions,
    /// AdamW's decoupled weight decay (applied to every parameter, as the `train` command does).
    pub weight_decay: f64,
    pub betas: (f64, f64),
    /// The share of the token stream held out for validation (the end of *Persuasion*).
    pub validation_fraction: f64,
}

impl TinyTraining {
    /// `steps` updates of 16 windows of 256 tokens (4096 tokens per update); the learning rate
    /// warms up over the first 5% of updates to 2e-3 and decays to a tenth of that.
    pub fn with_steps(steps: usize) -> TinyTraining {
        TinyTraining {
            options: PretrainOptions {
                steps,
                batch_size: 16,
                seq_len: 256,
                schedule: WarmupCosine { peak: 2e-3, warmup: (steps / 20).max(1), total: steps, floor: 0.1 },
                grad_clip: Some(1.0),
                eval_every: (steps / 20).max(1),
                eval_batches: 8,
                seed: 0,
                progress: true,
                watch_attention_logits: false,
            },
            weight_decay: 0.1,
            betas: (0.9, 0.95),
            validation_fraction: 0.05,
        }
    }
}
