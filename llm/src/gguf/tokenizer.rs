//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`), for the GPT-2-style byte-level BPE
//! vocabularies (`tokenizer.ggml.model = "gpt2"`) of Qwen3 and Llama 3: tokens in id order,
//! merges as "left right" strings, token types (3 = control), and `tokenizer.ggml.pre` naming
//! the pre-tokenizer regex. Both directions go through the Hugging Face `tokenizer.json`
//! layout, so the `tokenizers` crate does the tokenizing exactly as for a safetensors model.

use serde_json::{Value as Json, json};

use super::reader::GgufFile;
use super::value::{Array, Value};
use super::writer::GgufWriter;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Pre-tokenizer regexes by llama.cpp's `tokenizer.ggml.pre` name (from the tokenizer.json files
/// of the models that use them). `gpt-2` (llama.cpp's name; `gpt2` read too) is the byte-level
/// pre-tokenizer's own regex.
const QWEN2: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn pre_tokenizer(pre: &str) -> Option<Json> {
    let split = |regex: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
        ]})
    };
    Some(match pre {
        "gpt-2" | "gpt2" | "default" => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
        "qwen2" => split(QWEN2),
        "llama-bpe" | "llama3" => split(LLAMA3),
        _ => return None,
    })
}

/// The `tokenizer.ggml.pre` name of a tokenizer.json pre-tokenizer, when it is one of the above.
fn pre_name(pre: &Json) -> Option<&'static str> {
    if pre.get("type")?.as_str()? == "ByteLevel" {
        return pre.get("use_regex").and_then(Json::as_bool).unwrap_or(true).then_some("gpt-2");
    }
    let regex = pre.get("pretokenizers")?.get(0)?.get("pattern")?.get("Regex")?.as_str()?;
    match regex {
        QWEN2 => Some("qwen2"),
        LLAMA3 => Some("llama-bpe"),
        _ => None,
    }
}

/// The file's tokenizer, or None when it carries none. An unsupported kind is an error naming it.
pub fn from_gguf(file: &GgufFile) -> Result<Option<Tokenizer>> {
    let Some(model) = file.get("tokenizer.ggml.model") else { return Ok(None) };
    let bad = |msg: String| Error::format(&file.path, msg);
    let model = model.as_str().ok_or_else(|| bad("tokenizer.ggml.model is not a string".into()))?;
    if model != "gpt2" {
        return Err(bad(format!(
            "tokenizer.ggml.model is {model:?}; only GPT-2-style BPE (\"gpt2\") vocabularies are read so far"
        )));
    }
    let strings = |key: &str| -> Result<&[String]> {
        file.get(key)
            .and_then(Value::as_array)
            .and_then(Array::strings)
            .ok_or_else(|| bad(format!("{key} is missing or not an array of strings")))
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types = match file.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(a) => a.to_i64().ok_or_else(|| bad("tokenizer.ggml.token_type is not an integer array".into()))?,
        None => vec![1; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(bad(format!("tokenizer.ggml.token_type has {} entries for {} tokens", types.len(), tokens.len())));
    }
    let pre = file.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let pre_tokenizer = pre_tokenizer(pre)
        .ok_or_else(|| bad(format!("tokenizer.ggml.pre is {pre:?}; gpt-2, qwen2 and llama-bpe are read")))?;
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Json> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == 3 || **ty == 4)
        .map(|(i, (t, ty))| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": *ty == 4, "special": *ty == 3})
        })
        .collect();
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
        .map_err(|e| bad(format!("the tokenizer in the metadata does not build: {e}")))?;
    Ok(Some(Tokenizer::from_hf(inner)))
}

/// Writes a byte-level BPE `tokenizer.json`'s vocabulary as GGUF metadata. Returns false (writing
/// nothing) when the tokenizer is not one of the kinds [`from_gguf`] reads back.
pub fn to_gguf(tokenizer: &Tokenizer, w: &mut GgufWriter) -> Result<bool> {
    let json: Json =
        serde_json::from_str(&tokenizer.to_json()?).map_err(|e| Error::Tokenizer(format!("tokenizer JSON: {e}")))?;
    let model = &json["model"];
    let Some(pre) = pre_name(&json["pre_tokenizer"]) else { return Ok(false) };
    if model["type"] != "BPE" {
        return Ok(false);
    }
    let Some(vocab) = model["vocab"].as_object() else { return Ok(false) };
    let mut tokens = vec![None; vocab.len()];
    for (t, id) in vocab {
        match id.as_u64().and_then(|i| tokens.get_mut(i as usize)) {
            Some(slot) => *slot = Some(t.clone()),
            None => return Ok(false),
        }
    }
    let mut types = vec![1i32; tokens.len()];
    for added in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) else { return Ok(false) };
        match tokens.get_mut(id as usize) {
            Some(slot) => *slot = Some(content.to_string()),
            None => return Ok(false),
        }
        types[id as usize] = if added["special"].as_bool() == Some(true) { 3 } else { 4 };
    }
    let Some(tokens) = tokens.into_iter().collect::<Option<Vec<String>>>() else { return Ok(false) };
    let merges: Option<Vec<String>> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Json::String(s) => Some(s.clone()),
            Json::Array(pair) => Some(format!("{} {}", pair.first()?.as_str()?, pair.get(1)?.as_str()?)),
            _ => None,
        })
        .collect();
    let Some(merges) = merges else { return Ok(false) };
    w.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    w.set("tokenizer.ggml.pre", Value::String(pre.into()));
    w.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    w.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    w.set("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    Ok(true)
}
