//! `llm generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) --max-new-tokens N
//! [--temperature T] [--top-k K] [--top-p P] [--seed S] [--device cpu|gpu] [--json]`: streams
//! tokens as they are chosen; with `--json` the last line of stdout is `{"ids": [...]}`, prompt
//! and new tokens together.

use std::io::Write;
use std::path::Path;

use tensor::DType;

use crate::generate::{StopAt, generate};
use crate::models::{LoadOptions, load};
use crate::sample::Sampling;
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
    let (device, line) = crate::device::pick(args.device)?;
    eprintln!("{line}");
    let loaded = load(args.model, &LoadOptions { device: device.clone(), weight_dtype: DType::F32 })?;
    let prompt = match (args.prompt, args.prompt_ids) {
        (_, Some(ids)) => parse_ids(ids)?,
        (Some(_text), None) => {
            return Err(Error::input(
                "--prompt needs the model's tokenizer.json, which is not supported yet; use --prompt-ids",
            ));
        }
        (None, None) => return Err(Error::input("give --prompt TEXT or --prompt-ids 1,2,3")),
    };
    if prompt.len() + args.max_new_tokens > loaded.config.max_position_embeddings {
        return Err(Error::input(format!(
            "the prompt ({}) plus --max-new-tokens ({}) exceeds the model's context of {}",
            prompt.len(),
            args.max_new_tokens,
            loaded.config.max_position_embeddings
        )));
    }
    let stop = StopAt { eos: loaded.config.eos_token_ids.clone() };
    let mut stdout = std::io::stdout().lock();
    let ids = generate(&loaded.model, &prompt, args.max_new_tokens, args.sampling, &stop, &device, |token| {
        if !args.json {
            write!(stdout, "{token} ")
                .and_then(|_| stdout.flush())
                .map_err(|e| Error::input(format!("stdout: {e}")))?;
        }
        Ok(())
    })?;
    if args.json {
        writeln!(stdout, "{}", serde_json::json!({ "ids": ids })).map_err(|e| Error::input(format!("stdout: {e}")))?;
    } else {
        writeln!(stdout).map_err(|e| Error::input(format!("stdout: {e}")))?;
    }
    Ok(())
}
