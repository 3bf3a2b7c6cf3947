//! `llm quantize --model DIR --out FILE.gguf --type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k_m`:
//! writes a Hugging Face checkpoint as a GGUF file under llama.cpp's architecture name, metadata
//! keys and tensor names, its matrices encoded as the chosen type (byte-identical to llama.cpp's
//! reference quantizers for Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1; Q4_K_M mixes Q4_K and Q6_K as
//! llama.cpp does), with the tokenizer and the chat template of the folder when it has them.

use std::path::Path;

use tensor::DType;

use crate::chat_template::template_in_dir;
use crate::gguf::{FileType, write_gguf_with_template};
use crate::models::{LoadOptions, load};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

pub fn run(model: &Path, out: &Path, kind: &str) -> Result<()> {
    let file_type = FileType::parse(kind).ok_or_else(|| {
        Error::input(format!("--type must be f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1 or q4_k_m, got {kind:?}"))
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
    let template = template_in_dir(model)?;
    let with_tokenizer = write_gguf_with_template(
        &loaded.model,
        &loaded.config,
        tokenizer.as_ref(),
        template.as_deref(),
        &name,
        file_type,
        out,
    )?;
    let size = std::fs::metadata(out).map_err(|e| Error::io(out, e))?.len();
    let note = match (tokenizer.is_some(), with_tokenizer) {
        (_, true) => "with its tokenizer",
        (true, false) => "without its tokenizer (only byte-level BPE tokenizers are written)",
        (false, _) => "without a tokenizer (no tokenizer.json)",
    };
    let template_note = if template.is_some() { ", with its chat template" } else { "" };
    eprintln!("wrote {} ({size} bytes, {kind}, {note}{template_note})", out.display());
    Ok(())
}
