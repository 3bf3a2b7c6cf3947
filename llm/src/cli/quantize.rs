//! `llm quantize --model DIR --out FILE.gguf --type f32|f16|q8_0|q4_0`: writes a Hugging Face
//! checkpoint as a GGUF file under llama.cpp's architecture name, metadata keys and tensor
//! names, its matrices encoded as the chosen type (byte-identical to llama.cpp's reference
//! quantizers for Q8_0 and Q4_0).

use std::path::Path;

use tensor::DType;

use crate::gguf::{FileType, write_gguf};
use crate::models::{LoadOptions, load};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

pub fn run(model: &Path, out: &Path, kind: &str) -> Result<()> {
    let file_type = FileType::parse(kind).ok_or_else(|| {
        let hint = if kind.eq_ignore_ascii_case("q4_k_m") { " (q4_k_m is not written yet)" } else { "" };
        Error::input(format!("--type must be f32, f16, q8_0 or q4_0, got {kind:?}{hint}"))
    })?;
    if crate::gguf::is_gguf(model) {
        return Err(Error::input(format!(
            "{}: already a GGUF file; give a Hugging Face model folder",
            model.display()
        )));
    }
    let loaded = load(model, &LoadOptions { device: tensor::Device::cpu(), weight_dtype: Some(DType::F32) })?;
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let tokenizer_path = model.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() { Some(Tokenizer::from_file(&tokenizer_path)?) } else { None };
    let with_tokenizer = write_gguf(&loaded.model, &loaded.config, tokenizer.as_ref(), &name, file_type, out)?;
    let size = std::fs::metadata(out).map_err(|e| Error::io(out, e))?.len();
    let note = match (tokenizer.is_some(), with_tokenizer) {
        (_, true) => "with its tokenizer",
        (true, false) => "without its tokenizer (only byte-level BPE tokenizers are written)",
        (false, _) => "without a tokenizer (no tokenizer.json)",
    };
    eprintln!("wrote {} ({size} bytes, {kind}, {note})", out.display());
    Ok(())
}
