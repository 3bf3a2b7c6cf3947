//! Small helpers the notebooks share: where pictures go, the real-scale configs shipped in
//! `llm/configs/`, the tiny Hugging Face checkpoints in `llm/tests/data/hf-tiny/`, and the data
//! and settings the training notebooks start from.
//! Not an example itself (cargo only builds `examples/*.rs` as examples).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use llm::anatomy::{Anatomy, human_bytes, human_count};
use llm::config::ModelConfig;
use llm::models::{LoadOptions, Loaded, load};
use llm::tiny::{TinyTraining, assets_dir, corpus_tokens};
use llm::tokenizer::{TINY_TOKENIZER_FILE, Tokenizer};
use llm::train::TokenData;
use llm::weights::Checkpoint;
use tensor::{DType, Device};

/// The folder a notebook writes its pictures into: `target/examples-out/<name>/` for a real run,
/// a folder under the system temp dir when the `runs` test calls it (never the source tree).
pub fn out_dir(name: &str, quick: bool) -> llm::Result<PathBuf> {
    let dir = if quick {
        std::env::temp_dir().join("llmforge-examples").join(name)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("examples-out").join(name)
    };
    std::fs::create_dir_all(&dir).map_err(|e| llm::Error::io(&dir, e))?;
    Ok(dir)
}

/// One of the real-scale configs shipped in `llm/configs/` (e.g. `deepseek-v3.json`).
pub fn real_config(file: &str) -> llm::Result<ModelConfig> {
    llm::config::SHIPPED
        .iter()
        .find(|s| s.file == file)
        .ok_or_else(|| llm::Error::input(format!("llm/configs has no {file}")))?
        .parse()
}

/// A tiny checkpoint's folder (`deepseek_v3`, `olmo2`, ...).
pub fn fixture_dir(name: &str) -> PathBuf {
    llm::cli::tour::fixtures_dir().join(name)
}

/// Loads a tiny checkpoint, runs the batch its reference file holds and prints how far our
/// logits are from those transformers computed for the same weights.
pub fn run_fixture(name: &str) -> llm::Result<Loaded> {
    let dir = fixture_dir(name);
    let cpu = Device::cpu();
    let loaded = load(&dir, &LoadOptions { device: cpu.clone(), weight_dtype: Some(DType::F32) })?;
    let reference = Checkpoint::open(&dir.join("reference.safetensors"))?;
    let ids = reference.load("input_ids", Some(DType::U32), &cpu)?;
    let out = autograd::no_grad(|| loaded.model.forward(&ids, 0, None, false))?;
    let want = reference.load("logits", None, &cpu)?;
    let diff = out.logits.value().sub(&want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    println!(
        "tiny {name} checkpoint: input ids {:?} -> logits {:?}; largest difference from transformers' logits {diff:.1e}",
        ids.dims(),
        out.logits.dims()
    );
    Ok(loaded)
}

/// The layers of a built model, one line each.
pub fn print_layers(model: &llm::models::CausalLm) {
    for (i, layer) in model.layers.iter().enumerate() {
        println!(
            "  layer {i:>2}: {:<44} | {:<36} | {}",
            layer.self_attn.describe(),
            layer.ffn.describe(),
            layer.norms.name()
        );
    }
}

/// The headline numbers of a config's anatomy.
pub fn print_anatomy(name: &str, a: &Anatomy) {
    println!(
        "{name}: {} parameters, {} active per token ({:.1}%); {}; {}; {}; {}",
        human_count(a.total_params()),
        human_count(a.active_params()),
        100.0 * a.active_params() as f64 / a.total_params() as f64,
        a.attention_kind,
        a.norm_placement,
        a.positions,
        a.experts
    );
    println!(
        "  KV cache (bf16): {} per token, {} at 32k tokens, {} at 128k",
        human_bytes(a.kv_cache_bytes_per_token(DType::BF16)),
        human_bytes(a.kv_cache_bytes(32 * 1024, DType::BF16)),
        human_bytes(a.kv_cache_bytes(128 * 1024, DType::BF16))
    );
}

/// The shipped tokenizer and the Austen corpus as one token stream, its last 5% (the end of
/// *Persuasion*) held out, as the shipped model was trained.
pub fn austen_data() -> llm::Result<(Tokenizer, TokenData)> {
    let assets = assets_dir();
    let tokenizer = Tokenizer::from_file(assets.join(TINY_TOKENIZER_FILE))?;
    let tokens = corpus_tokens(&tokenizer, &assets.join("corpus"))?;
    let data = TokenData::split(tokens, TinyTraining::with_steps(1).validation_fraction)?;
    Ok((tokenizer, data))
}

/// The tiny model's training settings cut down to a notebook: `steps` updates of 8 windows of
/// 128 tokens, evaluated every `eval_every` updates on `eval_batches` batches, with a progress
/// bar; a `quick` run (the examples' test) takes 4 windows of 32 tokens, evaluated every 3
/// updates on one batch, silently.
pub fn notebook_training(steps: usize, eval_every: usize, eval_batches: usize, quick: bool) -> TinyTraining {
    let mut training = TinyTraining::with_steps(steps);
    let o = &mut training.options;
    o.seq_len = if quick { 32 } else { 128 };
    o.batch_size = if quick { 4 } else { 8 };
    o.eval_every = if quick { 3 } else { eval_every };
    o.eval_batches = if quick { 1 } else { eval_batches };
    o.progress = !quick;
    training
}

/// Multi-head latent attention at the tiny checkpoints' sizes: hidden 64, 4 heads, query LoRA
/// rank 48, latent 32, 16 nope + 8 rope dims per query/key head, 16-dim values, RoPE base
/// `rope_theta` over interleaved pairs, softmax scale `(16 + 8)^-0.5`.
pub fn toy_mla_config(rope_theta: f64) -> nn::attention::MlaConfig {
    nn::attention::MlaConfig {
        hidden_size: 64,
        num_heads: 4,
        q_lora_rank: Some(48),
        kv_lora_rank: 32,
        qk_nope_head_dim: 16,
        qk_rope_head_dim: 8,
        v_head_dim: 16,
        rms_norm_eps: 1e-6,
        rope: nn::rope::Rope::new(8, rope_theta, &nn::rope::RopeScaling::None, true),
        mask: nn::attention::MaskKind::Causal,
        scale: 24f64.powf(-0.5),
    }
}
