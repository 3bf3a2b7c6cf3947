//! `llm generate [--model DIR] (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N]
//! [--temperature T] [--top-k K] [--top-p P] [--seed S] [--device cpu|gpu] [--json]`: streams
//! the continuation as it is chosen: text when the prompt is text (through the model's
//! `tokenizer.json`), token ids otherwise; with `--json` the last line of stdout is
//! `{"ids": [...]}`, prompt and new tokens together. Without `--model` it runs the project's own
//! tiny model (`assets/tiny/`).

use std::io::Write;
use std::path::Path;

use tensor::DType;

use crate::generate::{StopAt, generate};
use crate::models::{LoadOptions, load};
use crate::sample::Sampling;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

pub struct GenerateArgs<'a> {
    pub model: &'a Path,
    pub prompt: Option<&'a str>,
    pub prompt_ids: Option<&'a str>,
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub device: Option<&'a str>,
    pub json: bool,
}

/// Parses `--prompt-ids 1,2,3`.
pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                Error::input(format!(
                    "--prompt-ids: {s:?} is not a token id (expected comma-separated non-negative integers)"
                ))
            })
        })
        .collect()
}

pub fn run(args: GenerateArgs) -> Result<()> {
    args.sampling.validate()?;
    if !args.model.join("config.json").is_file() && !args.model.is_file() {
        return Err(Error::input(format!(
            "{}: no config.json there (give --model a Hugging Face model folder)",
            args.model.display()
        )));
    }
    let tokenizer_path = args.model.join("tokenizer.json");
    let gguf = crate::gguf::is_gguf(args.model);
    let tokenizer = match (args.prompt, tokenizer_path.is_file()) {
        // A GGUF file carries its tokenizer in its metadata.
        (Some(_), _) if gguf => {
            let file = crate::gguf::GgufFile::open(args.model)?;
            Some(crate::gguf::tokenizer::from_gguf(&file)?.ok_or_else(|| {
                Error::input(format!("{}: no tokenizer in this GGUF file; give --prompt-ids", args.model.display()))
            })?)
        }
        (Some(_), true) => Some(Tokenizer::from_file(&tokenizer_path)?),
        (Some(_), false) => {
            return Err(Error::input(format!(
                "--prompt needs the model's tokenizer, and {} does not exist; give token ids with --prompt-ids",
                tokenizer_path.display()
            )));
        }
        (None, _) => None,
    };
    let (device, line) = crate::device::pick(args.device)?;
    eprintln!("{line}");
    let loaded = load(args.model, &LoadOptions { device: device.clone(), weight_dtype: DType::F32 })?;
    let prompt = match (args.prompt, args.prompt_ids, &tokenizer) {
        (_, Some(ids), _) => parse_ids(ids)?,
        (Some(text), None, Some(tokenizer)) => {
            // A model trained with a beginning-of-sequence token expects it first; the tokenizer
            // is asked for the text alone so the token is never doubled.
            let mut ids: Vec<u32> = loaded.config.bos_token_id.into_iter().collect();
            ids.extend(tokenizer.encode(text)?);
            if ids.is_empty() {
                return Err(Error::input("--prompt is empty and the model has no beginning-of-sequence token"));
            }
            ids
        }
        _ => return Err(Error::input("give --prompt TEXT or --prompt-ids 1,2,3")),
    };
    if prompt.len() + args.max_new_tokens > loaded.config.max_position_embeddings {
        return Err(Error::input(format!(
            "the prompt ({} tokens) plus --max-new-tokens ({}) exceeds the model's context of {}",
            prompt.len(),
            args.max_new_tokens,
            loaded.config.max_position_embeddings
        )));
    }
    let stop = StopAt { eos: loaded.config.eos_token_ids.clone() };
    let mut stdout = std::io::stdout().lock();
    let write_err = |e: std::io::Error| Error::input(format!("stdout: {e}"));
    let mut text = tokenizer.as_ref().filter(|_| args.prompt.is_some()).map(|t| t.incremental_decoder());
    if let (Some(prompt_text), Some(_), false) = (args.prompt, &text, args.json) {
        write!(stdout, "{prompt_text}").and_then(|_| stdout.flush()).map_err(write_err)?;
    }
    let ids = generate(&loaded.model, &prompt, args.max_new_tokens, args.sampling, &stop, &device, |token| {
        if args.json || stop.eos.contains(&token) {
            return Ok(());
        }
        let piece = match text.as_mut() {
            Some(decoder) => decoder.push(token)?,
            None => format!("{token} "),
        };
        write!(stdout, "{piece}").and_then(|_| stdout.flush()).map_err(write_err)
    })?;
    if args.json {
        writeln!(stdout, "{}", serde_json::json!({ "ids": ids })).map_err(write_err)?;
    } else {
        let rest = match text.as_mut() {
            Some(decoder) => decoder.finish()?,
            None => String::new(),
        };
        writeln!(stdout, "{rest}").map_err(write_err)?;
    }
    Ok(())
}
