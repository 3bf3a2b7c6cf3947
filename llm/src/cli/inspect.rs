//! `llm inspect --model DIR_OR_CONFIG_JSON_OR_GGUF [--context N] [--kv-dtype bf16] [--json]`: the real-scale
//! anatomy of a config (no weights needed). With `--json` the last line of stdout is one object
//! with at least `total_params`, `active_params`, `kv_cache_bytes_per_token` and
//! `weight_bytes` (the weights' memory in each of [`WEIGHT_FORMATS`]), and for a GGUF file
//! `gguf`: bytes and bits per weight by tensor type.

use std::path::Path;

use serde_json::{Map, Value};
use tensor::DType;

use crate::anatomy::{Anatomy, human_bytes};
use crate::config::ModelConfig;
use crate::{Error, Result};

/// A storage format for weights and its cost in bits per weight, block scales included.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightFormat {
    pub name: &'static str,
    pub bits_per_weight: f64,
    pub note: &'static str,
}

impl WeightFormat {
    /// Bytes `params` weights take in this format.
    pub fn bytes(&self, params: u64) -> u64 {
        (params as f64 * self.bits_per_weight / 8.0).round() as u64
    }
}

/// The formats a released model is usually served in. FP8 counts DeepSeek-V3's released layout:
/// e4m3 values with one f32 `weight_scale_inv` per 128x128 block (32 bits over 16384 weights);
/// the 4-bit row is llama.cpp's q4_0: blocks of 32 4-bit values sharing one f16 scale (4.5 bits).
pub const WEIGHT_FORMATS: [WeightFormat; 4] = [
    WeightFormat { name: "f32", bits_per_weight: 32.0, note: "" },
    WeightFormat { name: "bf16", bits_per_weight: 16.0, note: "" },
    WeightFormat { name: "fp8", bits_per_weight: 8.0 + 32.0 / 16384.0, note: "e4m3, 128x128 block scales" },
    WeightFormat { name: "q4_0", bits_per_weight: 4.5, note: "4-bit, a f16 scale per 32" },
];

pub fn run(model: &Path, context: usize, dtype: &str, json: bool) -> Result<()> {
    let dtype = DType::parse(dtype)
        .filter(|d| d.is_float())
        .ok_or_else(|| Error::input(format!("--kv-dtype must be f32, bf16 or f16, got {dtype:?}")))?;
    // A GGUF file: the config from its metadata, and its tensors by type.
    let gguf = if crate::gguf::is_gguf(model) { Some(crate::gguf::GgufFile::open(model)?) } else { None };
    let config = match &gguf {
        Some(file) => crate::gguf::config::model_config(file)?,
        None => ModelConfig::from_path(model)?,
    };
    let anatomy = Anatomy::try_of(&config)?;
    let total = anatomy.total_params();
    if json {
        let mut out = anatomy.to_json(context, dtype);
        let weights: Map<String, Value> =
            WEIGHT_FORMATS.iter().map(|f| (f.name.to_string(), Value::from(f.bytes(total)))).collect();
        if let Value::Object(o) = &mut out {
            o.insert("weight_bytes".into(), Value::Object(weights));
            o.insert("mtp_layers".into(), Value::from(config.mtp_layers));
            if let Some(file) = &gguf {
                o.insert("gguf".into(), crate::gguf::summary::to_json(file));
            }
        }
        println!("{out}");
    } else {
        if let Some(file) = &gguf {
            println!("{}", crate::gguf::summary::describe(file));
        }
        println!("{anatomy}");
        let memory: Vec<String> = WEIGHT_FORMATS
            .iter()
            .map(|f| match f.note {
                "" => format!("{} in {}", human_bytes(f.bytes(total)), f.name),
                note => format!("{} in {} ({note})", human_bytes(f.bytes(total)), f.name),
            })
            .collect();
        println!("  weights         {}", memory.join(", "));
        if config.mtp_layers > 0 {
            println!(
                "  multi-token     {} prediction layer(s) (num_nextn_predict_layers) in the checkpoint, not counted above",
                config.mtp_layers
            );
        }
        println!("  at {context} tokens ({dtype}): KV cache {}", human_bytes(anatomy.kv_cache_bytes(context, dtype)));
    }
    Ok(())
}
