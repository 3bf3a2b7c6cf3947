//! The architectures: one decoder skeleton (`decoder.rs`), the pieces and the one way of putting
//! them together (`recipe.rs`), and one file per architecture owning all that is that
//! architecture ([`architecture::Architecture`]: the `model_type`s it answers to, its class
//! defaults and own config fields, its layer pattern and recipe), listed in [`registry`].

pub mod architecture;
pub mod batched;
pub mod blocks;
pub mod decoder;
pub mod deepseek_v3;
pub mod differences;
mod experts_load;
pub mod gemma3;
pub mod gpt_oss;
pub mod kimi_k2;
pub mod llama4;
pub mod load;
pub mod mistral;
pub mod olmo2;
pub mod pack;
pub mod qwen3;
pub mod qwen3_moe;
pub mod recipe;
pub mod registry;
pub mod save;
pub mod smollm3;

use std::path::Path;

use nn::Init;

pub use batched::Segment;
pub use blocks::{AttentionBlock, AttentionSegment, FeedForwardBlock};
pub use decoder::{CausalLm, DecoderLayer, ForwardOutput, LayerNorms};
pub use load::{LoadOptions, load_weights};

use crate::config::ModelConfig;
use crate::weights::Checkpoint;
use crate::{Error, Result};

/// Builds the model a config describes, with parameters from `init` (random, or placeholders).
pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    config.architecture().build(config, init)
}

/// A model with its config, loaded from a Hugging Face checkpoint directory.
pub struct Loaded {
    pub config: ModelConfig,
    pub model: CausalLm,
}

/// Reads `dir/config.json`, builds the model and fills it from the checkpoint; or, given a GGUF
/// file, reads the config and weights from it.
pub fn load(dir: &Path, options: &LoadOptions) -> Result<Loaded> {
    if crate::gguf::is_gguf(dir) {
        return crate::gguf::load_gguf(dir, options);
    }
    load_checkpoint(dir, options, None)
}

/// [`load`] of a Hugging Face checkpoint with its matrices quantized to `ty` (Q8_0 or Q4_0) as
/// they are read and kept as blocks (`--quantize`; see [`load_weights`] and [`pack`]). A GGUF
/// file keeps the types it is stored in, so it is refused here.
pub fn load_quantized(dir: &Path, options: &LoadOptions, ty: tensor::quant::GgmlType) -> Result<Loaded> {
    if crate::gguf::is_gguf(dir) {
        return Err(Error::input(format!(
            "--quantize: {} is a GGUF file, whose weights keep the types they are stored in (quantize a Hugging Face folder instead, or write a file of another type with `llm quantize`)",
            dir.display()
        )));
    }
    load_checkpoint(dir, options, Some(ty))
}

fn load_checkpoint(dir: &Path, options: &LoadOptions, quantize: Option<tensor::quant::GgmlType>) -> Result<Loaded> {
    let config = ModelConfig::from_path(dir)?;
    let mut checkpoint = Checkpoint::open(dir)?;
    if let Some(crate::config::WeightQuantization::Fp8 { block }) = config.quantization {
        checkpoint.set_fp8_block(block);
    }
    let model = build(&config, &mut Init::placeholders(&options.device))?;
    load_weights(&model, &config, &checkpoint, options, quantize)?;
    Ok(Loaded { config, model })
}
