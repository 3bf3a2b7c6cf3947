//! `llm inspect --model DIR_OR_CONFIG_JSON_OR_GGUF [--context N] [--dtype bf16] [--json]`: the real-scale
//! anatomy of a config (no weights needed). With `--json` the last line of stdout is one object
//! with at least `total_params`, `active_params` and `kv_cache_bytes_per_token` (and for a GGUF
//! file `gguf`: bytes and bits per weight by tensor type).

use std::path::Path;

use tensor::DType;

use crate::anatomy::{Anatomy, human_bytes};
use crate::config::ModelConfig;
use crate::{Error, Result};

pub fn run(model: &Path, context: usize, dtype: &str, json: bool) -> Result<()> {
    let dtype = DType::parse(dtype)
        .filter(|d| d.is_float())
        .ok_or_else(|| Error::input(format!("--dtype must be f32, bf16 or f16, got {dtype:?}")))?;
    // A GGUF file: the config from its metadata, and its tensors by type.
    let gguf = if crate::gguf::is_gguf(model) { Some(crate::gguf::GgufFile::open(model)?) } else { None };
    let config = match &gguf {
        Some(file) => crate::gguf::config::model_config(file)?,
        None => ModelConfig::from_path(model)?,
    };
    let anatomy = Anatomy::of(&config);
    if json {
        let mut value = anatomy.to_json(context, dtype);
        if let (Some(file), Some(map)) = (&gguf, value.as_object_mut()) {
            map.insert("gguf".into(), crate::gguf::summary::to_json(file));
        }
        println!("{value}");
    } else {
        if let Some(file) = &gguf {
            println!("{}", crate::gguf::summary::describe(file));
        }
        println!("{anatomy}");
        println!("  at {context} tokens ({dtype}): KV cache {}", human_bytes(anatomy.kv_cache_bytes(context, dtype)));
    }
    Ok(())
}
