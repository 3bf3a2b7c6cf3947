//! `llm inspect --model DIR_OR_CONFIG_JSON [--context N] [--dtype bf16] [--json]`: the real-scale
//! anatomy of a config (no weights needed). With `--json` the last line of stdout is one object
//! with at least `total_params`, `active_params` and `kv_cache_bytes_per_token`.

use std::path::Path;

use tensor::DType;

use crate::anatomy::{Anatomy, human_bytes};
use crate::config::ModelConfig;
use crate::{Error, Result};

pub fn run(model: &Path, context: usize, dtype: &str, json: bool) -> Result<()> {
    let dtype = DType::parse(dtype)
        .filter(|d| d.is_float())
        .ok_or_else(|| Error::input(format!("--dtype must be f32, bf16 or f16, got {dtype:?}")))?;
    let config = ModelConfig::from_path(model)?;
    let anatomy = Anatomy::of(&config);
    if json {
        println!("{}", anatomy.to_json(context, dtype));
    } else {
        println!("{anatomy}");
        println!("  at {context} tokens ({dtype}): KV cache {}", human_bytes(anatomy.kv_cache_bytes(context, dtype)));
    }
    Ok(())
}
